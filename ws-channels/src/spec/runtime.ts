/** A received message, or the reason a frame could not be used (undecodable, wrong shape). */
export interface Received<T> {
  err?: Error;
  msg?: T;
}

/** The part of the standard `WebSocket` interface used here: browsers, Node 22+, and `ws`. */
export interface WebSocketLike {
  readonly readyState: number;
  /** Set to `"arraybuffer"` by binary channels' `subscribe` where it is `"blob"` (browsers). */
  binaryType?: string;
  send(data: string | Uint8Array): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  removeEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
}

/** A JSON Schema (draft-07), as the document carries it. */
export type Schema = boolean | { [keyword: string]: unknown };

/** `WebSocket.OPEN`. */
export const OPEN = 1;

export function channelUrl(base: string, address: string, parameters: Record<string, string | number>): string {
  const path = address.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = parameters[name];
    if (value === undefined || `${value}` === "") throw new Error(`missing parameter ${name}`);
    return encodeURIComponent(`${value}`);
  });
  return `${base.replace(/\/+$/, "")}/${path}`;
}

/** How a channel's messages become frames and back. */
export interface FrameCodec {
  /** Whether its frames are binary: `subscribe` then asks for `ArrayBuffer`s, not `Blob`s. */
  readonly binary: boolean;
  encode(message: unknown): string | Uint8Array;
  /** The value a frame carries; throws when it carries none. */
  decode(data: unknown): unknown;
}

/** JSON text frames, the default. */
export const JSON_CODEC: FrameCodec = {
  binary: false,
  encode: (message) => JSON.stringify(message),
  decode: (data) => JSON.parse(frameText(data)),
};

export function publishMessage(ws: WebSocketLike, schema: string, message: unknown, codec: FrameCodec = JSON_CODEC): Promise<void> {
  if (ws.readyState !== OPEN) return Promise.reject(new Error("the WebSocket is not open"));
  const problem = validate(schemaOf(schema), message, "message");
  if (problem) return Promise.reject(new Error(problem));
  let frame: string | Uint8Array;
  try {
    frame = codec.encode(message);
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  ws.send(frame);
  return Promise.resolve();
}

export function subscribeMessages<T>(
  ws: WebSocketLike,
  schema: string,
  onData: (received: Received<T>) => void,
  codec: FrameCodec = JSON_CODEC,
): () => void {
  if (codec.binary) acceptArrayBuffers(ws);
  const listener = (event: { data: unknown }) => {
    let value: unknown;
    try {
      value = codec.decode(event.data);
    } catch (err) {
      onData({ err: err instanceof Error ? err : new Error(String(err)) });
      return;
    }
    const problem = validate(schemaOf(schema), value, "message");
    onData(problem ? { err: new Error(problem) } : { msg: value as T });
  };
  ws.addEventListener("message", listener);
  return () => ws.removeEventListener("message", listener);
}

/** Sends one frame of a raw channel as it is: a string as a text frame, bytes as a binary one. */
export function publishRaw(ws: WebSocketLike, message: string | Uint8Array): Promise<void> {
  if (ws.readyState !== OPEN) return Promise.reject(new Error("the WebSocket is not open"));
  if (typeof message !== "string" && !(message instanceof Uint8Array)) {
    return Promise.reject(new Error("message: expected a string or a Uint8Array"));
  }
  ws.send(message);
  return Promise.resolve();
}

/** Each frame of a raw channel as it came: a text frame as a string, a binary one as bytes. */
export function subscribeRaw(ws: WebSocketLike, onData: (received: Received<string | Uint8Array>) => void): () => void {
  acceptArrayBuffers(ws);
  const listener = (event: { data: unknown }) => {
    if (typeof event.data === "string") {
      onData({ msg: event.data });
      return;
    }
    try {
      onData({ msg: frameBytes(event.data) });
    } catch (err) {
      onData({ err: err instanceof Error ? err : new Error(String(err)) });
    }
  };
  ws.addEventListener("message", listener);
  return () => ws.removeEventListener("message", listener);
}

/** Browsers hand binary frames over as `Blob`s unless told otherwise, and a `Blob` reads asynchronously. */
export function acceptArrayBuffers(ws: WebSocketLike): void {
  if (ws.binaryType === "blob") ws.binaryType = "arraybuffer";
}

export function frameText(data: unknown): string {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data as ArrayBuffer);
  throw new Error("expected a text frame");
}

/** A binary frame's bytes (an `ArrayBuffer`, or a Node `Buffer`), without copying. */
export function frameBytes(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === "string") throw new Error("expected a binary frame, got a text frame");
  throw new Error('expected a binary frame as an ArrayBuffer (binaryType "arraybuffer")');
}

/** A shared schema by name; an unknown name admits nothing. */
export function schemaOf(name: string): Schema {
  return hasOwn(SCHEMAS, name) ? (SCHEMAS[name] as Schema) : false;
}

/** Own keys only: a message's `constructor` or `toString` is data, not the prototype's. */
export function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

/** Checks `value` against the draft-07 subset the schemas use; returns the first problem. */
export function validate(schema: Schema, value: unknown, at: string): string | null {
  if (schema === true) return null;
  if (schema === false) return `${at}: no value is allowed here`;
  const s = schema as Record<string, unknown>;
  if (typeof s.$ref === "string") {
    // `#/components/schemas/<name>`, the name escaped as a JSON pointer in a URI fragment.
    const segment = decodeURIComponent(s.$ref.split("/").pop() ?? "");
    return validate(schemaOf(segment.replace(/~1/g, "/").replace(/~0/g, "~")), value, at);
  }
  if ("const" in s && !equal(s.const, value)) return `${at}: expected ${JSON.stringify(s.const)}`;
  if (Array.isArray(s.enum) && !s.enum.some((option) => equal(option, value))) {
    return `${at}: expected one of ${JSON.stringify(s.enum)}`;
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((type) => hasType(type as string, value))) return `${at}: expected ${types.join(" or ")}`;
  }
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && value < s.minimum) return `${at}: below ${s.minimum}`;
    if (typeof s.maximum === "number" && value > s.maximum) return `${at}: above ${s.maximum}`;
  }
  if (typeof value === "string") {
    // JSON Schema counts characters (code points), not UTF-16 units.
    const length = [...value].length;
    if (typeof s.minLength === "number" && length < s.minLength) return `${at}: shorter than ${s.minLength}`;
    if (typeof s.maxLength === "number" && length > s.maxLength) return `${at}: longer than ${s.maxLength}`;
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === "number" && value.length < s.minItems) return `${at}: fewer than ${s.minItems} items`;
    if (typeof s.maxItems === "number" && value.length > s.maxItems) return `${at}: more than ${s.maxItems} items`;
    if (Array.isArray(s.items)) {
      for (const [i, item] of s.items.entries()) {
        const problem = validate(item as Schema, value[i], `${at}[${i}]`);
        if (problem) return problem;
      }
    } else if (s.items !== undefined) {
      for (const [i, item] of value.entries()) {
        const problem = validate(s.items as Schema, item, `${at}[${i}]`);
        if (problem) return problem;
      }
    }
  }
  if (isObject(value)) {
    const properties = (s.properties ?? {}) as Record<string, Schema>;
    const patterns = Object.entries((s.patternProperties ?? {}) as Record<string, Schema>);
    for (const name of (s.required ?? []) as string[]) {
      if (!hasOwn(value, name) || value[name] === undefined) return `${at}: missing ${name}`;
    }
    for (const [name, item] of Object.entries(value)) {
      // JSON.stringify drops undefined properties: they are not sent.
      if (item === undefined) continue;
      let property: Schema | undefined = hasOwn(properties, name) ? properties[name] : undefined;
      if (property === undefined) {
        const pattern = patterns.find(([regex]) => new RegExp(regex, "u").test(name));
        property = pattern ? pattern[1] : (s.additionalProperties as Schema | undefined);
      }
      if (property === undefined) continue;
      const problem = validate(property, item, `${at}.${name}`);
      if (problem) return problem;
    }
  }
  for (const part of (s.allOf ?? []) as Schema[]) {
    const problem = validate(part, value, at);
    if (problem) return problem;
  }
  if (Array.isArray(s.anyOf) && !s.anyOf.some((option) => validate(option as Schema, value, at) === null)) {
    return `${at}: matches none of the allowed shapes`;
  }
  if (Array.isArray(s.oneOf)) {
    const matching = s.oneOf.filter((option) => validate(option as Schema, value, at) === null).length;
    if (matching !== 1) return `${at}: matches ${matching} of the shapes, expected exactly 1`;
  }
  return null;
}

export function hasType(type: string, value: unknown): boolean {
  switch (type) {
    case "null": return value === null;
    case "boolean": return typeof value === "boolean";
    case "string": return typeof value === "string";
    case "number": return typeof value === "number" && Number.isFinite(value);
    case "integer": return Number.isInteger(value);
    case "array": return Array.isArray(value);
    case "object": return isObject(value);
    default: return true;
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
