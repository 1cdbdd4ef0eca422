//! A receive-only WebSocket client parsed by hand, for the broadcast subscribers.
//!
//! Why not tokio-tungstenite, as everywhere else in the load generator: a broadcast makes the
//! load generator read as many frames as the server writes, on one core of its own, so its
//! cost per frame must stay well below any server's, or it, not the server, sets the rate (the
//! results' "load gen busy" column). A general client pays per frame for what these
//! subscribers never need: a read buffer zeroed before every read, a `Message` and its
//! allocation, a timer armed around every frame. This one reads into spare capacity, parses the
//! frames already read in place and arms one timer per wait for the socket. It checks what it
//! skips: a frame that is masked, fragmented, reserved-bit or over-long is an error, so a server
//! cannot be measured on frames a real client would refuse.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::Result;
use crate::load::WAIT;

/// Spare room kept in the buffer for each read.
const READ: usize = 8 * 1024;
/// The largest frame accepted (the benchmark's messages are about 100 bytes).
const MAX_FRAME: usize = 1 << 20;

/// A client connection that only receives.
pub struct Subscriber {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// Where the next unparsed frame starts in `buf`.
    pos: usize,
}

/// A frame's opcode and its payload's place in the buffer.
struct Frame {
    opcode: u8,
    start: usize,
    end: usize,
}

impl Subscriber {
    /// Opens a WebSocket to `path` on `addr` with its own HTTP/1.1 upgrade; a
    /// `small_receive_buffer` (4 KiB) makes a subscriber that never reads push back on the
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
            Ok(Self {
                tcp,
                buf,
                pos: head_end,
            })
        };
        timeout(WAIT, open)
            .await
            .map_err(|_| format!("connecting to {path} took over {WAIT:?}"))?
    }

    /// The next text frame's payload, each wait for the socket within [`WAIT`]. Pings and
    /// pongs are skipped (the servers measured send none); a close frame or the end of the
    /// stream is an error, as are binary and malformed frames.
    pub async fn next_text(&mut self) -> Result<&str> {
        let frame = loop {
            if let Some(frame) = self.parse()? {
                self.pos = frame.end;
                match frame.opcode {
                    0x1 => break frame,
                    0x9 | 0xA => continue,
                    0x8 => return Err("the server closed the connection".into()),
                    opcode => return Err(format!("unexpected frame, opcode {opcode:#x}").into()),
                }
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
        Ok(std::str::from_utf8(&self.buf[frame.start..frame.end])?)
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

    fn subscriber_with(bytes: &[u8], tcp: TcpStream) -> Subscriber {
        Subscriber {
            tcp,
            buf: bytes.to_vec(),
            pos: 0,
        }
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
        let mut sub = subscriber_with(&wire[..50], client);
        server.write_all(&wire[50..]).await.expect("writes");
        assert_eq!(sub.next_text().await.expect("a text frame"), text);

        for (bytes, what) in [
            (&[0x01, 0x01, b'a'][..], "fragmented"),
            (&[0xC1, 0x01, b'a'][..], "reserved-bit"),
            (&[0x81, 0x81, 0, 0, 0, 0, b'a'][..], "masked"),
            (&[0x82, 0x01, 0][..], "opcode"),
            (&[0x88, 0x00][..], "closed"),
        ] {
            let (client, _server) = pair().await;
            let error = subscriber_with(bytes, client).next_text().await.expect_err("refused");
            assert!(error.to_string().contains(what), "{what}: {error}");
        }
    }
}
