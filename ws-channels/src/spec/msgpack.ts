
/**
 * MessagePack binary frames, with `@msgpack/msgpack`: maps decode to plain objects and are
 * validated as JSON messages are. `undefined` properties are left out, as `JSON.stringify` does.
 */
const MSGPACK_CODEC: FrameCodec = {
  binary: true,
  encode: (message) => msgpackEncode(message, { ignoreUndefined: true }),
  decode: (data) => msgpackDecode(frameBytes(data)),
};
