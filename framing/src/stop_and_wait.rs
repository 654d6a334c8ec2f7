//! Stop-and-wait: announce the length, wait for the receiver's ACK, then send the body.
//!
//! This is a protocol, not a codec: each message costs a round trip before its body can
//! be sent. It is here to be benchmarked against real framing, and because it is what
//! many hand-written "send the size first, then wait for OK" programs do.
//!
//! ```text
//! sender                                receiver
//!   | -- length (u32, big-endian) ------> |
//!   | <------------------- ACK 0x06 ----- |   length <= receiver's maximum
//!   | -- body (length bytes) -----------> |
//!
//!   | <--- NAK 0x15, max (u64, BE) ------ |   length over the maximum: no body follows
//! ```
//!
//! ```
//! use socklab_framing::stop_and_wait;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let (mut client, mut server) = tokio::io::duplex(64);
//! let receiver = tokio::spawn(async move { stop_and_wait::recv(&mut server, 1024).await });
//! stop_and_wait::send(&mut client, b"hello").await.unwrap();
//! assert_eq!(receiver.await.unwrap().unwrap().unwrap(), "hello");
//! # });
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::FramingError;

/// The receiver accepts the announced length.
pub const ACK: u8 = 0x06;
/// The receiver refuses the announced length; its maximum (u64, big-endian) follows.
pub const NAK: u8 = 0x15;
/// Width of the length announcement, in bytes.
pub const HEADER_LEN: usize = 4;

/// Sends one message: announces its length, waits for the receiver's answer, then sends
/// the body.
///
/// # Errors
/// [`FramingError::FrameTooLarge`] when the payload does not fit a u32, or when the
/// receiver answers NAK (then `max` is the receiver's limit);
/// [`FramingError::InvalidHeader`] for an answer that is neither ACK nor NAK;
/// [`FramingError::Truncated`] when the receiver closes before answering;
/// [`FramingError::Io`] when reading or writing fails.
pub async fn send<S>(stream: &mut S, payload: &[u8]) -> Result<(), FramingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let len = u32::try_from(payload.len())
        .map_err(|_| FramingError::FrameTooLarge { len: payload.len() as u64, max: u64::from(u32::MAX) })?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.flush().await?;
    let mut answer = [0u8; 1];
    if read_full(stream, &mut answer).await? < 1 {
        return Err(FramingError::Truncated { expected: 1, got: 0 });
    }
    match answer[0] {
        ACK => {}
        NAK => {
            let mut max = [0u8; 8];
            let got = read_full(stream, &mut max).await?;
            if got < max.len() {
                return Err(FramingError::Truncated { expected: 9, got: 1 + got as u64 });
            }
            return Err(FramingError::FrameTooLarge { len: u64::from(len), max: u64::from_be_bytes(max) });
        }
        other => {
            return Err(FramingError::invalid_header(format!(
                "expected ACK (0x06) or NAK (0x15) from the receiver, got {other:#04x}"
            )));
        }
    }
    stream.write_all(payload).await?;
    stream.flush().await?;
    Ok(())
}

/// Receives one message: reads the announced length, answers ACK (or NAK when it is over
/// `max_len`), then reads the body.
///
/// Returns `Ok(None)` when the stream ends cleanly before a new message starts. The body
/// buffer is reserved only after the length has been checked against `max_len`. A
/// receiver that must decide more than the length limit before it answers (whether it
/// has room for the body, say) calls [`recv_announcement`] and [`recv_body`] instead.
///
/// # Errors
/// As [`recv_announcement`] and [`recv_body`].
pub async fn recv<S>(stream: &mut S, max_len: usize) -> Result<Option<Bytes>, FramingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(len) = recv_announcement(stream).await? else { return Ok(None) };
    Ok(Some(recv_body(stream, len, max_len).await?))
}

/// Reads the next length announcement and does not answer it yet; `Ok(None)` when the
/// stream ends cleanly before a new message starts.
///
/// # Errors
/// [`FramingError::Truncated`] when the stream ends inside the length;
/// [`FramingError::Io`] when reading fails.
pub async fn recv_announcement<S>(stream: &mut S) -> Result<Option<u32>, FramingError>
where
    S: AsyncRead + Unpin,
{
    let mut header = [0u8; HEADER_LEN];
    match read_full(stream, &mut header).await? {
        0 => Ok(None),
        HEADER_LEN => Ok(Some(u32::from_be_bytes(header))),
        got => Err(FramingError::Truncated { expected: HEADER_LEN as u64, got: got as u64 }),
    }
}

/// Answers the announcement of `len` bytes read by [`recv_announcement`] — ACK, or NAK
/// when it is over `max_len` — and reads the body.
///
/// # Errors
/// [`FramingError::FrameTooLarge`] when `len` is over `max_len` (the sender has been told
/// with NAK); [`FramingError::Truncated`] when the stream ends inside the body;
/// [`FramingError::Io`] when reading or writing fails.
pub async fn recv_body<S>(stream: &mut S, len: u32, max_len: usize) -> Result<Bytes, FramingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if u64::from(len) > max_len as u64 {
        let mut nak = [0u8; 9];
        nak[0] = NAK;
        nak[1..].copy_from_slice(&(max_len as u64).to_be_bytes());
        stream.write_all(&nak).await?;
        stream.flush().await?;
        return Err(FramingError::FrameTooLarge { len: u64::from(len), max: max_len as u64 });
    }
    stream.write_all(&[ACK]).await?;
    stream.flush().await?;
    // `len <= max_len`, so this reservation is bounded by the caller's limit.
    let len = len as usize;
    let mut body = BytesMut::with_capacity(len);
    while body.len() < len {
        // Limit the read to this body: the next announcement may already be queued.
        let remaining = len - body.len();
        if stream.read_buf(&mut (&mut body).limit(remaining)).await? == 0 {
            let expected = (HEADER_LEN + len) as u64;
            return Err(FramingError::Truncated { expected, got: (HEADER_LEN + body.len()) as u64 });
        }
    }
    Ok(body.freeze())
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
async fn read_full<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<usize, FramingError> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
