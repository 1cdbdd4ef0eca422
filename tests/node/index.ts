// One index over the modules of two contracts and their shared runtime: each contract module
// exports only its own names, so nothing is exported twice (TS2308). Compiled with the rest of
// tsconfig.json; ts_client.ts imports through it.
export * from "../../examples/ws-channels.js";
export * from "../../examples/user_events.js";
export * from "../../examples/binary.js";
