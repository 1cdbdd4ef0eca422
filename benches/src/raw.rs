//! A WebSocket client parsed and framed by hand, for the clients that set the load
//! generator's pace: the broadcast subscribers and the echo clients.
//!
//! Why not tokio-tungstenite, as everywhere else in the load generator: a broadcast makes the
//! load generator read as many frames as the server writes, and an echo as many as it writes
//! and reads, on one core of its own, so its cost per frame must stay well below any server's,
//! or it, not the server, sets the rate (the results' "load gen busy" column). A general client
//! pays per frame for what these clients never need: a read buffer zeroed before every read, a
//! `Message` and its allocation, a timer armed around every frame, a lock shared by the halves
//! of a split stream. This one reads into spare capacity, parses the frames already read in
//! place, arms one timer per wait for the socket, and writes the frames it queued with one
//! write. It checks what it skips: a frame that is masked, fragmented, reserved-bit or
//! over-long is an error, so a server cannot be measured on frames a real client would refuse.
//! What it sends is masked, as RFC 6455 requires of a client (§5.3).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data as DataCode, OpCode};

use crate::Result;
use crate::load::WAIT;

/// Spare room kept in the buffer for each read.
const READ: usize = 8 * 1024;
/// The largest frame accepted (the benchmark's messages are about 100 bytes).
const MAX_FRAME: usize = 1 << 20;

/// A client connection.
pub struct RawClient {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// Where the next unparsed frame starts in `buf`.
    pos: usize,
    /// Frames queued by [`send`](Self::send), written by [`flush`](Self::flush).
    out: Vec<u8>,
    /// The next masking key's source: xorshift, so keys vary from frame to frame, though
    /// not unpredictably as RFC 6455 §5.3 asks of a browser (which no server can check), and
    /// without a random-number generator's cost.
    mask: u64,
}

/// A data frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data<'a> {
    /// A text frame's.
    Text(&'a str),
    /// A binary frame's.
    Binary(&'a [u8]),
}

/// A frame's opcode and its payload's place in the buffer.
struct Frame {
    opcode: u8,
    start: usize,
    end: usize,
}

impl RawClient {
    /// Opens a WebSocket to `path` on `addr` with its own HTTP/1.1 upgrade; a
    /// `small_receive_buffer` (4 KiB) makes a client that never reads push back on the
    /// server soon, as a stalled phone would.
    pub async fn connect(addr: SocketAddr, path: &str, small_receive_buffer: bool) -> Result<Self> {
        let open = async {
            let socket = TcpSocket::new_v4()?;
            if small_receive_buffer {
                socket.set_recv_buffer_size(4 * 1024)?;
            }
            let mut tcp = socket.connect(addr).await?;
            tcp.set_nodelay(true)?;
            // Any 16 bytes, base64: servers only echo their digest.
            let key = "bG9hZC1nZW5lcmF0b3IhIQ==";
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            tcp.write_all(request.as_bytes()).await?;
            let mut buf = Vec::with_capacity(READ);
            let head_end = loop {
                if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                if buf.len() > 16 * 1024 {
                    return Err("the upgrade response has no end".into());
                }
                buf.reserve(READ);
                if tcp.read_buf(&mut buf).await? == 0 {
                    return Err("the server closed the connection during the upgrade".into());
                }
            };
            let head = std::str::from_utf8(&buf[..head_end])?;
            if !head.starts_with("HTTP/1.1 101") {
                let status = head.lines().next().unwrap_or_default();
                return Err(format!("upgrade refused: {status}").into());
            }
            let accept = derive_accept_key(key.as_bytes());
            let accepted = head.lines().any(|line| {
                line.split_once(':').is_some_and(|(name, value)| {
                    name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == accept
                })
            });
            if !accepted {
                return Err("the upgrade response lacks the right Sec-WebSocket-Accept".into());
            }
            // Frames the server sent right after its 101 stay in the buffer.
            Ok(Self::from_parts(tcp, buf, head_end))
        };
        timeout(WAIT, open)
            .await
            .map_err(|_| format!("connecting to {path} took over {WAIT:?}"))?
    }

    fn from_parts(tcp: TcpStream, buf: Vec<u8>, pos: usize) -> Self {
        // Seeded by the socket's port, so connections mask differently; never zero.
        let port = tcp.local_addr().map_or(0, |addr| addr.port());
        Self {
            tcp,
            buf,
            pos,
            out: Vec::new(),
            mask: 0x9E37_79B9_7F4A_7C15 ^ u64::from(port),
        }
    }

    /// The next text frame's payload, waiting for it as [`next_data`](Self::next_data) does;
    /// any other data frame is an error.
    pub async fn next_text(&mut self) -> Result<&str> {
        match self.next_data().await? {
            Data::Text(text) => Ok(text),
            Data::Binary(_) => Err("unexpected binary frame".into()),
        }
    }

    /// The next data frame's payload, each wait for the socket within [`WAIT`]. Pings and
    /// pongs are skipped (the servers measured send none); a close frame or the end of the
    /// stream is an error, as are malformed frames.
    pub async fn next_data(&mut self) -> Result<Data<'_>> {
        let frame = loop {
            if let Some(frame) = self.next_buffered()? {
                break frame;
            }
            // Keep the partial frame, drop what was parsed, then read after it.
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.buf.reserve(READ);
            match timeout(WAIT, self.tcp.read_buf(&mut self.buf)).await {
                Err(_) => return Err(format!("nothing received for {WAIT:?}").into()),
                Ok(Ok(0)) => return Err("the server closed the connection".into()),
                Ok(read) => read?,
            };
        };
        self.data(&frame)
    }

    /// The next data frame's payload if all of it was already read: never waits.
    pub fn buffered_data(&mut self) -> Result<Option<Data<'_>>> {
        match self.next_buffered()? {
            Some(frame) => self.data(&frame).map(Some),
            None => Ok(None),
        }
    }

    /// Queues `payload` as one masked frame (`binary` or text) for the next
    /// [`flush`](Self::flush); `write` appends the payload to the buffer it is given.
    pub fn send(&mut self, binary: bool, write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<()> {
        let data = if binary { DataCode::Binary } else { DataCode::Text };
        self.queue(OpCode::Data(data), write)
    }

    /// Sends a close frame (1000, normal closure) with what is still queued; what the server
    /// answers is not waited for.
    pub async fn close(mut self) -> Result<()> {
        self.queue(OpCode::Control(Control::Close), |out| {
            out.extend_from_slice(&1000_u16.to_be_bytes());
            Ok(())
        })?;
        self.flush().await
    }

    /// Queues one masked frame of `opcode`.
    fn queue(&mut self, opcode: OpCode, write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<()> {
        // The payload goes after room for the longest header (14 bytes), then tungstenite's
        // header is written right before it and the gap closed: one copy of the payload at most.
        let at = self.out.len();
        self.out.resize(at + 14, 0);
        if let Err(error) = write(&mut self.out) {
            self.out.truncate(at);
            return Err(error);
        }
        let len = self.out.len() - at - 14;
        // xorshift64: a new key per frame.
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 7;
        self.mask ^= self.mask << 17;
        let key = (self.mask as u32).to_ne_bytes();
        let header = FrameHeader {
            opcode,
            mask: Some(key),
            ..FrameHeader::default()
        };
        let n = header.len(len as u64);
        header.format(len as u64, &mut &mut self.out[at + 14 - n..at + 14])?;
        for (i, byte) in self.out[at + 14..].iter_mut().enumerate() {
            *byte ^= key[i & 3];
        }
        self.out.drain(at..at + 14 - n);
        Ok(())
    }

    /// Writes the frames queued so far, within [`WAIT`].
    pub async fn flush(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        timeout(WAIT, self.tcp.write_all(&self.out))
            .await
            .map_err(|_| format!("writing took over {WAIT:?}"))??;
        self.out.clear();
        Ok(())
    }

    /// The next data frame already read, skipping pings and pongs.
    fn next_buffered(&mut self) -> Result<Option<Frame>> {
        while let Some(frame) = self.parse()? {
            self.pos = frame.end;
            match frame.opcode {
                0x1 | 0x2 => return Ok(Some(frame)),
                0x9 | 0xA => continue,
                0x8 => return Err("the server closed the connection".into()),
                opcode => return Err(format!("unexpected frame, opcode {opcode:#x}").into()),
            }
        }
        Ok(None)
    }

    fn data(&self, frame: &Frame) -> Result<Data<'_>> {
        let payload = &self.buf[frame.start..frame.end];
        Ok(match frame.opcode {
            0x1 => Data::Text(std::str::from_utf8(payload)?),
            _ => Data::Binary(payload),
        })
    }

    /// The frame at `pos`, if all of it was read (RFC 6455 §5.2).
    fn parse(&self) -> Result<Option<Frame>> {
        let bytes = &self.buf[self.pos..];
        let [first, second, ..] = *bytes else {
            return Ok(None);
        };
        if first & 0x80 == 0 || first & 0x70 != 0 {
            return Err(format!("a fragmented or reserved-bit frame ({first:#04x})").into());
        }
        if second & 0x80 != 0 {
            return Err("a masked frame from the server".into());
        }
        let (header, len) = match second & 0x7F {
            126 if bytes.len() >= 4 => (4, usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))),
            127 if bytes.len() >= 10 => {
                let len = u64::from_be_bytes(bytes[2..10].try_into()?);
                (10, usize::try_from(len)?)
            }
            126 | 127 => return Ok(None),
            len => (2, usize::from(len)),
        };
        if len > MAX_FRAME {
            return Err(format!("a frame of {len} bytes").into());
        }
        if bytes.len() < header + len {
            return Ok(None);
        }
        let start = self.pos + header;
        Ok(Some(Frame {
            opcode: first & 0x0F,
            start,
            end: start + len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_with(bytes: &[u8], tcp: TcpStream) -> RawClient {
        RawClient::from_parts(tcp, bytes.to_vec(), 0)
    }

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let client = TcpStream::connect(listener.local_addr().expect("has an address"));
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.expect("connects"), accepted.expect("accepts").0)
    }

    #[tokio::test]
    async fn frames_split_across_reads_parse_and_bad_ones_are_refused() {
        let (client, mut server) = pair().await;
        // A ping, then a text frame of 200 bytes (16-bit length) cut in the middle.
        let text = "x".repeat(200);
        let mut wire = vec![0x89, 0x00, 0x81, 126, 0, 200];
        wire.extend_from_slice(text.as_bytes());
        let mut sub = client_with(&wire[..50], client);
        server.write_all(&wire[50..]).await.expect("writes");
        assert_eq!(sub.next_text().await.expect("a text frame"), text);

        for (bytes, what) in [
            (&[0x01, 0x01, b'a'][..], "fragmented"),
            (&[0xC1, 0x01, b'a'][..], "reserved-bit"),
            (&[0x81, 0x81, 0, 0, 0, 0, b'a'][..], "masked"),
            (&[0x83, 0x01, 0][..], "opcode"),
            (&[0x82, 0x01, 0][..], "binary"),
            (&[0x88, 0x00][..], "closed"),
        ] {
            let (client, _server) = pair().await;
            let error = client_with(bytes, client).next_text().await.expect_err("refused");
            assert!(error.to_string().contains(what), "{what}: {error}");
        }
    }

    #[tokio::test]
    async fn queued_frames_are_masked_and_read_back_by_a_real_server() {
        use futures_util::StreamExt;
        use tokio_tungstenite::WebSocketStream;
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::protocol::Role;

        let (client, server) = pair().await;
        let mut client = client_with(&[], client);
        let mut server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        // One frame of each length class, text and binary, written with one flush.
        let payloads = ["a".repeat(5), "b".repeat(300), "c".repeat(70_000)];
        // A payload that failed to encode leaves nothing behind.
        let failed = client.send(false, |out| {
            out.extend_from_slice(b"half");
            Err("failed".into())
        });
        assert!(failed.is_err());
        for (i, payload) in payloads.iter().enumerate() {
            let binary = i == 1;
            client
                .send(binary, |out| {
                    out.extend_from_slice(payload.as_bytes());
                    Ok(())
                })
                .expect("queues");
        }
        let (flushed, received) = tokio::join!(client.flush(), async {
            let mut received = Vec::new();
            for _ in 0..payloads.len() {
                received.push(server.next().await.expect("a frame").expect("a valid frame"));
            }
            received
        });
        flushed.expect("flushes");
        assert_eq!(
            received,
            vec![
                Message::text(payloads[0].clone()),
                Message::binary(payloads[1].clone().into_bytes()),
                Message::text(payloads[2].clone()),
            ]
        );

        // Two replies in one write: the second is taken from the buffer, without a read.
        use futures_util::SinkExt;
        server.feed(Message::text("one")).await.expect("queues");
        server.feed(Message::binary(vec![2])).await.expect("queues");
        server.flush().await.expect("writes");
        assert_eq!(client.next_data().await.expect("a frame"), Data::Text("one"));
        assert_eq!(client.buffered_data().expect("parses"), Some(Data::Binary(&[2])));
        assert_eq!(client.buffered_data().expect("parses"), None, "nothing more was read");

        client.close().await.expect("closes");
        match server.next().await.expect("a frame").expect("a valid frame") {
            Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}
