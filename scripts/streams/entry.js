// entry.js: the source of internal/isolate/streams.js (scripts/gen-streams.sh
// bundles it with web-streams-polyfill). The stream classes are the
// polyfill's, unchanged: the WHATWG reference implementation. What is ours
// is below: the encoding and compression transforms the polyfill does not
// have, and the helpers the prelude uses for bodies.
import {
  ReadableStream, ReadableStreamDefaultReader, ReadableStreamBYOBReader, ReadableStreamDefaultController,
  ReadableByteStreamController, ReadableStreamBYOBRequest, WritableStream, WritableStreamDefaultWriter,
  WritableStreamDefaultController, TransformStream, TransformStreamDefaultController,
  ByteLengthQueuingStrategy, CountQueuingStrategy,
} from "web-streams-polyfill";

// install is called once per isolate by the prelude with its host call and
// helpers; it returns the globals and the body helpers.
export function install(host, toAB, enc, dec) {
  const u8 = (chunk) => {
    if (typeof chunk === "string") return new Uint8Array(enc(chunk));
    if (chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)) return new Uint8Array(toAB(chunk).slice(0));
    throw new TypeError("a byte stream chunk must be an ArrayBuffer, an ArrayBufferView or a string");
  };

  // TextEncoderStream keeps a lone high surrogate at the end of a chunk for
  // the next one, as the Encoding standard says.
  class TextEncoderStream extends TransformStream {
    constructor() {
      let pending = "";
      super({
        transform(chunk, c) {
          let s = pending + String(chunk);
          pending = "";
          const last = s.charCodeAt(s.length - 1);
          if (last >= 0xd800 && last <= 0xdbff) { pending = s.slice(-1); s = s.slice(0, -1); }
          if (s !== "") c.enqueue(new Uint8Array(enc(s)));
        },
        flush(c) { if (pending !== "") c.enqueue(new Uint8Array(enc(pending))); },
      });
    }
    get encoding() { return "utf-8"; }
  }

  // TextDecoderStream is a TextDecoder decoding with {stream: true}: it
  // carries the bytes of a character split across chunks over to the next
  // one, in any of its encodings, and drops a BOM only at the start.
  class TextDecoderStream extends TransformStream {
    constructor(label = "utf-8", opts = {}) {
      const d = new TextDecoder(label, opts);
      super({
        transform(chunk, c) {
          const s = d.decode(u8(chunk), { stream: true });
          if (s !== "") c.enqueue(s);
        },
        flush(c) {
          const s = d.decode();
          if (s !== "") c.enqueue(s);
        },
      });
      this._d = d;
    }
    get encoding() { return this._d.encoding; }
    get fatal() { return this._d.fatal; }
    get ignoreBOM() { return this._d.ignoreBOM; }
  }

  // CompressionStream and DecompressionStream ("gzip", "deflate",
  // "deflate-raw") collect their input and run it through Go's
  // compress/gzip or compress/flate in one host call when the input ends
  // (host ops "compress" and "decompress"); output is bounded there.
  const FORMATS = ["gzip", "deflate", "deflate-raw"];
  function zstream(op, format) {
    format = String(format);
    if (!FORMATS.includes(format)) throw new TypeError(`Unsupported compression format: '${format}'`);
    let parts = [], size = 0;
    return {
      transform(chunk) { const b = u8(chunk); parts.push(b); size += b.length; },
      flush(c) {
        const all = new Uint8Array(size);
        let at = 0;
        for (const p of parts) { all.set(p, at); at += p.length; }
        parts = [];
        const out = host(op, format, all.buffer);
        if (out.byteLength > 0) c.enqueue(new Uint8Array(out));
      },
    };
  }
  class CompressionStream extends TransformStream {
    constructor(format) { super(zstream("compress", format)); }
  }
  class DecompressionStream extends TransformStream {
    constructor(format) { super(zstream("decompress", format)); }
  }

  // fromBytes is the stream a buffered body reads as (request.body).
  const fromBytes = (ab) => new ReadableStream({
    type: "bytes",
    start(c) { if (ab.byteLength > 0) c.enqueue(new Uint8Array(ab.slice(0))); c.close(); },
  });
  // readAll reads a body stream to its end as one ArrayBuffer.
  async function readAll(stream) {
    const r = stream.getReader(), parts = [];
    let size = 0;
    for (;;) {
      const { done, value } = await r.read();
      if (done) break;
      const b = u8(value);
      parts.push(b); size += b.length;
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const p of parts) { all.set(p, at); at += p.length; }
    return all.buffer;
  }
  // stepper returns the function Go calls to pull a response body: each
  // call gives a promise of the next chunk as an ArrayBuffer, or of
  // undefined at the end; stepper(reason) cancels the stream instead.
  function stepper(stream) {
    const r = stream.getReader();
    return (reason) => {
      if (reason !== undefined) return r.cancel(reason).then(() => undefined, () => undefined);
      return r.read().then(({ done, value }) => (done ? undefined : u8(value).buffer));
    };
  }

  return {
    ReadableStream, ReadableStreamDefaultReader, ReadableStreamBYOBReader, ReadableStreamDefaultController,
    ReadableByteStreamController, ReadableStreamBYOBRequest, WritableStream, WritableStreamDefaultWriter,
    WritableStreamDefaultController, TransformStream, TransformStreamDefaultController,
    ByteLengthQueuingStrategy, CountQueuingStrategy, TextEncoderStream, TextDecoderStream,
    CompressionStream, DecompressionStream, fromBytes, readAll, stepper,
  };
}
