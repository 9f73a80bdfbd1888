// identitystream.js: Workers' IdentityTransformStream and FixedLengthStream,
// compiled by the prelude on first use (host op "lib") on top of
// streams.js's TransformStream. Both pass bytes through unchanged: a chunk
// written must be an ArrayBuffer or ArrayBufferView (anything else is a
// TypeError that errors the stream), and it is read out as a Uint8Array
// copy of those bytes. A FixedLengthStream errors when more bytes than its
// length are written, or fewer when it closes.
(function (TransformStream) {
  "use strict";
  const bytes = (chunk) => {
    if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk.slice(0));
    if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength));
    throw new TypeError("This TransformStream is being used as a byte stream, but received an object of non-ArrayBuffer/ArrayBufferView type on its writable side.");
  };
  // pending is the transformer a FixedLengthStream hands the
  // IdentityTransformStream constructor it calls (never user input).
  let pending = null;
  class IdentityTransformStream extends TransformStream {
    constructor() {
      const t = pending || { transform(chunk, c) { c.enqueue(bytes(chunk)); } };
      pending = null;
      super(t);
    }
    get [Symbol.toStringTag]() { return "IdentityTransformStream"; }
  }
  class FixedLengthStream extends IdentityTransformStream {
    constructor(length) {
      if (arguments.length === 0) throw new TypeError("FixedLengthStream: a length is required");
      const n = typeof length === "bigint" ? Number(length) : length;
      if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new TypeError(`FixedLengthStream: length must be a non-negative integer, not ${String(length)}`);
      let seen = 0;
      pending = {
        transform(chunk, c) {
          const b = bytes(chunk);
          seen += b.byteLength;
          if (seen > n) throw new TypeError("Attempt to write too many bytes through a FixedLengthStream.");
          c.enqueue(b);
        },
        flush() { if (seen < n) throw new TypeError("FixedLengthStream did not see all expected bytes before close()."); },
      };
      super();
    }
    get [Symbol.toStringTag]() { return "FixedLengthStream"; }
  }
  return { IdentityTransformStream, FixedLengthStream };
})
