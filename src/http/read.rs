//! Reading request heads off a socket: the one loop both HTTP listeners (the public port on
//! the shards, `/metrics` on the API executor) use.

use super::{HeadError, RequestHead, parse_head};
use futures_lite::{AsyncRead, AsyncReadExt};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;

/// Reads into `buf` (appending) until it starts with a complete head. `Ok(None)`: the peer
/// closed first; `Ok(Some(Err(_)))`: the head is malformed or too large.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Result<RequestHead, HeadError>>> {
    loop {
        match parse_head(buf) {
            Ok(Some(head)) => return Ok(Some(Ok(head))),
            Ok(None) => {
                if read_more(stream, buf).await? == 0 {
                    return Ok(None);
                }
            }
            Err(e) => return Ok(Some(Err(e))),
        }
    }
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
