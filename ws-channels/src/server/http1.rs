//! The standalone server's HTTP/1.1: reading an upgrade request's head from a raw socket and
//! writing a response to it. What to answer is decided in `decision`.

use http::{Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::response::Reject;

/// The most bytes of request line and headers accepted before answering 431.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// The most headers accepted before answering 431.
const MAX_HEADERS: usize = 64;

/// A parsed request head and whatever bytes followed it.
pub(crate) struct RequestHead {
    pub(crate) parts: http::request::Parts,
    pub(crate) leftover: Vec<u8>,
}

/// Reads the request head. `Ok(None)`: the peer left before sending one.
pub(crate) async fn read_request_head<IO: AsyncRead + Unpin>(io: &mut IO) -> Result<Option<RequestHead>, Reject> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        // Read into the buffer itself: a chunk array would live in every connection's task.
        buf.reserve(1024);
        let start = buf.len();
        let n = io.read_buf(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return Ok(None);
        }
        // The head ends with an empty line: until a read brings a line end, parsing the whole
        // buffer again would only find it incomplete (and cost quadratic time on a trickle).
        if !buf[start..].contains(&b'\n') && buf.len() < MAX_REQUEST_HEAD {
            continue;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let parts = to_parts(&request)?;
                return Ok(Some(RequestHead {
                    parts,
                    leftover: buf.split_off(len),
                }));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST_HEAD => continue,
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Err(Reject::head_too_large());
            }
            Err(error) => {
                return Err(Reject::malformed_request(error));
            }
        }
    }
}

fn to_parts(request: &httparse::Request<'_, '_>) -> Result<http::request::Parts, Reject> {
    let version = match request.version {
        Some(1) => http::Version::HTTP_11,
        _ => http::Version::HTTP_10,
    };
    let mut builder = http::Request::builder()
        .method(request.method.unwrap_or("GET"))
        .uri(request.path.unwrap_or("/"))
        .version(version);
    for header in request.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    builder
        .body(())
        .map(|r| r.into_parts().0)
        .map_err(Reject::malformed_request)
}

/// Writes `response`. A refusal carries its body and ends the connection; a 101 hands the
/// socket over to the WebSocket protocol.
pub(crate) async fn write_response<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    response: &Response<String>,
) -> std::io::Result<()> {
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        head.push_str(name.as_str());
        head.push_str(": ");
        head.push_str(&String::from_utf8_lossy(value.as_bytes()));
        head.push_str("\r\n");
    }
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    if !upgrade {
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n",
            response.body().len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(response.body());
    io.write_all(head.as_bytes()).await?;
    match upgrade {
        true => io.flush().await,
        false => io.shutdown().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn garbage_is_a_bad_request() {
        let mut input: &[u8] = b"\x00\x01 nonsense\r\n\r\n";
        let reject = read_request_head(&mut input).await.err().unwrap();
        assert_eq!(reject.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn an_endless_head_is_refused() {
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_REQUEST_HEAD + 10));
        let reject = read_request_head(&mut long.as_slice()).await.err().unwrap();
        assert_eq!(reject.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_refusal_is_serialized_with_its_length() {
        let mut out = Vec::new();
        write_response(&mut out, &Reject::forbidden("no").to_response())
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
        assert!(text.contains("content-type: text/plain; charset=utf-8\r\n"), "{text}");
        assert!(
            text.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\nno"),
            "{text}"
        );
    }
}
