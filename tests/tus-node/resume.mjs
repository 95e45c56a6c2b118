// Uploads a file with tus-js-client, interrupts it, asks the server where it stands (HEAD),
// then resumes with a new tus.Upload on the same upload URL, so the second half must start at
// the server's offset rather than at 0. Prints one JSON line; exits non-zero on any error.
//
// node resume.mjs --endpoint URL --file PATH --chunk-size BYTES --interrupt-at BYTES
//     [--authorization 'Bearer KEY'] [--access private|public] [--filetype TYPE]
//     [--abort between-chunks|mid-chunk] [--data-during-creation]
//
// --abort between-chunks (default) aborts once a PATCH that took the offset to at least
// --interrupt-at was acknowledged; mid-chunk sends half of the following PATCH's body, waits
// for the server to take it in, then cuts the connection: tus 1.0 says a server SHOULD keep
// what it received of a cut-off PATCH, so the server's offset may land inside that chunk.
import { createReadStream, statSync } from "node:fs";
import { basename } from "node:path";
import { Transform } from "node:stream";
import { parseArgs } from "node:util";
import * as tus from "tus-js-client";

const { values: args } = parseArgs({
  options: {
    endpoint: { type: "string" },
    authorization: { type: "string" },
    file: { type: "string" },
    "chunk-size": { type: "string" },
    "interrupt-at": { type: "string" },
    access: { type: "string", default: "private" },
    filetype: { type: "string", default: "application/octet-stream" },
    abort: { type: "string", default: "between-chunks" },
    "data-during-creation": { type: "boolean", default: false },
  },
});
for (const name of ["endpoint", "file", "chunk-size", "interrupt-at"]) {
  if (!args[name]) fail(`--${name} is required`);
}
if (!["between-chunks", "mid-chunk"].includes(args.abort)) {
  fail(`--abort must be between-chunks or mid-chunk, not ${args.abort}`);
}
const chunkSize = Number(args["chunk-size"]);
const interruptAt = Number(args["interrupt-at"]);
const size = statSync(args.file).size;
if (interruptAt <= 0 || interruptAt >= size) {
  fail(`--interrupt-at must be inside the file (1..${size - 1})`);
}
const headers = args.authorization ? { Authorization: args.authorization } : {};

function fail(message) {
  process.stderr.write(`resume.mjs: ${message}\n`);
  process.exit(1);
}

// A DefaultHttpStack whose next PATCH, once `cutNextPatch` is called, sends half its body,
// holds the rest back for a moment and then calls `onCut` (which aborts the upload).
class CuttingHttpStack extends tus.DefaultHttpStack {
  cutNextPatch(onCut) {
    this._onCut = onCut;
  }

  createRequest(method, url) {
    const request = super.createRequest(method, url);
    if (method !== "PATCH" || !this._onCut) return request;
    const onCut = this._onCut;
    this._onCut = null;
    const send = request.send.bind(request);
    request.send = (body) => {
      const half = Math.floor(body.size / 2);
      let passed = 0;
      const cutter = new Transform({
        transform(chunk, _encoding, callback) {
          if (passed >= half) return; // never call back: the rest of the body stays here
          const take = chunk.subarray(0, half - passed);
          passed += take.length;
          this.push(take);
          if (passed >= half) setTimeout(onCut, 300);
          callback();
        },
      });
      cutter.size = body.size;
      return send(body.pipe(cutter));
    };
    return request;
  }
}

// The first upload: creation, PATCHes, then an abort once past `interruptAt`.
function uploadUntilInterrupted() {
  return new Promise((resolve, reject) => {
    let acknowledged = 0;
    let aborted = false;
    const httpStack = new CuttingHttpStack();
    const stop = () => {
      aborted = true;
      upload.abort().then(() => resolve({ upload, acknowledged }), reject);
    };
    const upload = new tus.Upload(createReadStream(args.file), {
      endpoint: args.endpoint,
      headers,
      chunkSize,
      uploadSize: size,
      httpStack,
      retryDelays: null,
      storeFingerprintForResuming: false,
      uploadDataDuringCreation: args["data-during-creation"],
      metadata: { filename: basename(args.file), filetype: args.filetype, access: args.access },
      onChunkComplete(_chunk, bytesAccepted) {
        acknowledged = bytesAccepted;
        if (aborted || bytesAccepted < interruptAt) return;
        if (args.abort === "between-chunks") {
          stop();
        } else {
          aborted = true;
          httpStack.cutNextPatch(stop);
        }
      },
      onSuccess() {
        reject(new Error(`the upload finished before it could be interrupted at ${interruptAt}`));
      },
      onError(error) {
        reject(new Error(`first upload: ${error.message}`));
      },
    });
    upload.start();
  });
}

async function head(url) {
  const response = await fetch(url, { method: "HEAD", headers: { ...headers, "Tus-Resumable": "1.0.0" } });
  if (response.status !== 200 && response.status !== 204) {
    throw new Error(`HEAD ${url} answered ${response.status}`);
  }
  const offset = response.headers.get("upload-offset");
  if (offset === null || !/^\d+$/.test(offset)) {
    throw new Error(`HEAD ${url} answered without a valid Upload-Offset (${offset})`);
  }
  return { offset: Number(offset), fileId: response.headers.get("reelay-file-id") };
}

// The second upload: a new tus.Upload given the URL, which HEADs and continues from there.
function resume(uploadUrl) {
  return new Promise((resolve, reject) => {
    let fileId = null;
    let resumedFrom = null;
    let headOffset = null;
    const upload = new tus.Upload(createReadStream(args.file), {
      uploadUrl,
      headers,
      chunkSize,
      uploadSize: size,
      // As browsers run it: a 409 or 423 (the server still saving the cut request's bytes
      // when this client asked for the offset) makes it ask again and go on from there.
      retryDelays: [0, 250, 500, 1000, 2000, 4000],
      storeFingerprintForResuming: false,
      onBeforeRequest(req) {
        if (req.getMethod() === "PATCH" && resumedFrom === null) {
          resumedFrom = Number(req.getHeader("Upload-Offset"));
        }
      },
      onAfterResponse(req, res) {
        if (req.getMethod() === "HEAD" && headOffset === null) {
          headOffset = Number(res.getHeader("Upload-Offset"));
        }
        fileId = res.getHeader("Reelay-File-Id") ?? fileId;
      },
      onSuccess() {
        resolve({ fileId, resumedFrom, headOffset });
      },
      onError(error) {
        reject(new Error(`resumed upload: ${error.message}`));
      },
    });
    upload.start();
  });
}

try {
  const { upload, acknowledged } = await uploadUntilInterrupted();
  const uploadUrl = upload.url;
  if (!uploadUrl) throw new Error("the server gave no upload URL");
  const before = await head(uploadUrl);
  const { fileId, resumedFrom, headOffset } = await resume(uploadUrl);
  const after = await head(uploadUrl);
  if (after.offset !== size) {
    throw new Error(`after the resumed upload the server says Upload-Offset ${after.offset}, not ${size}`);
  }
  console.log(
    JSON.stringify({
      upload_url: uploadUrl,
      offset_at_interrupt: acknowledged,
      offset_before_resume: before.offset,
      resumed_from: resumedFrom,
      resume_head_offset: headOffset,
      file_id: fileId,
      file_id_from_head: after.fileId,
      bytes: size,
    }),
  );
} catch (error) {
  fail(error.message);
}
