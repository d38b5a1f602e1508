//! Reading request heads off a socket: the one loop both HTTP listeners (the public port on
//! the shards, `/metrics` on the API executor) use.

use super::{HeadError, RequestHead, parse_head};
use futures_lite::{AsyncRead, AsyncReadExt};
use std::time::{Duration, Instant};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;

/// Longest a request head may take to arrive, from its first byte: a head trickled a byte at a
/// time would otherwise hold its connection forever (each read alone is quick enough).
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// Reads into `buf` (appending) until it starts with a complete head. `Ok(None)`: the peer
/// closed first; `Ok(Some(Err(_)))`: the head is malformed, too large or too slow. Waiting
/// for a head's first byte is the caller's idle timeout; from that byte on, [`HEAD_DEADLINE`].
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Result<RequestHead, HeadError>>> {
    let mut deadline: Option<Instant> = None;
    loop {
        match parse_head(buf) {
            Ok(Some(head)) => return Ok(Some(Ok(head))),
            Err(e) => return Ok(Some(Err(e))),
            Ok(None) => {}
        }
        // The head has begun once a byte of it is here.
        if deadline.is_none() && !buf.is_empty() {
            deadline = Some(Instant::now() + HEAD_DEADLINE);
        }
        let read = match deadline {
            None => Some(read_more(stream, buf).await?),
            Some(d) => read_more_by(stream, buf, d).await?,
        };
        match read {
            None => return Ok(Some(Err(HeadError::TooSlow))),
            Some(0) => return Ok(None),
            Some(_) => {}
        }
    }
}

/// [`read_more`] unless `deadline` passes first (`Ok(None)`).
pub async fn read_more_by<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> std::io::Result<Option<usize>> {
    let left = deadline.saturating_duration_since(Instant::now());
    let read = async { read_more(stream, buf).await.map(Some) };
    let late = async {
        glommio::timer::Timer::new(left).await;
        Ok(None)
    };
    futures_lite::future::or(read, late).await
}

/// Appends what one read returns to `buf`; `Ok(0)` at end of stream.
pub async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let len = buf.len();
    buf.resize(len + READ_CHUNK, 0);
    let n = stream.read(&mut buf[len..]).await;
    buf.truncate(len + *n.as_ref().unwrap_or(&0));
    n
}
