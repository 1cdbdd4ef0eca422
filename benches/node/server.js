// The Node `ws` server of the benchmark suite: the same wire behaviour as the Rust servers
// (JSON chat messages, parsed and stringified, on any path). Started by the `bench` runner:
//
//   node benches/node/server.js echo|broadcast
//
// It prints `listening on ws://ADDR` and exits when its standard input closes (the runner
// ended), so it never outlives a run.
'use strict';

const { WebSocketServer, WebSocket } = require('ws');

const mode = process.argv[2];
if (mode !== 'echo' && mode !== 'broadcast') {
  console.error('usage: node server.js echo|broadcast');
  process.exit(2);
}

// No compression: the Rust servers do not negotiate it either (and it is ws's server default).
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });

wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    let json;
    try {
      json = JSON.stringify(JSON.parse(data));
    } catch {
      return;
    }
    if (mode === 'echo') {
      ws.send(json);
      return;
    }
    // Serialized once, like the Rust broadcasters.
    for (const client of wss.clients) {
      if (client !== ws && client.readyState === WebSocket.OPEN) {
        client.send(json);
      }
    }
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  const { address, port } = wss.address();
  console.log(`listening on ws://${address}:${port}`);
});

process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
