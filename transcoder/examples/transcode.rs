//! Runs the pipeline on one local file, for trying inputs by hand:
//! `cargo run -p transcoder --example transcode -- <input> <empty-or-new-out-dir>`

use std::path::PathBuf;

use transcoder::{plan_ladder, probe, transcode, LadderOptions, Limits, Tools};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(input), Some(out_dir)) = (args.next(), args.next()) else {
        eprintln!("usage: transcode <input> <out-dir>");
        std::process::exit(2);
    };
    let tools = Tools::from_path_env()?;
    let limits = Limits::default();
    let probe = probe(&tools, &input, &limits).await?;
    println!("{probe:#?}");
    let ladder = plan_ladder(&probe, &LadderOptions::default())?;
    println!("{ladder:#?}");
    let output = transcode(&tools, &input, &probe, &ladder, &out_dir, &limits, &|p| {
        eprint!("\r{p:3}%");
    })
    .await;
    eprintln!();
    match output {
        Ok(output) => {
            for r in &output.renditions {
                println!("{r:?}");
            }
            for f in &output.files {
                println!(
                    "{:>10}  {:<32} {}",
                    f.size,
                    f.content_type,
                    f.path.display()
                );
            }
            Ok(())
        }
        Err(err) => {
            eprintln!("failed: {err}\nuser sees: {}", err.reason());
            std::process::exit(1);
        }
    }
}
