//! The one decoder behind every codec whose header announces the body length: the
//! fixed-width length prefix, the varint prefix and the JSON header.
//!
//! Each of those codecs only says how to read its header ([`Header`]); this module does
//! the rest the same way for all of them: the limit check **before** any memory is
//! reserved, skipping an oversized body unbuffered, staying failed once the boundary is
//! lost, `Truncated` at end of stream, and cutting the body out of the read buffer without
//! copying (`split_to(n).freeze()`).
//!
//! The common case takes a fast path with no state-machine detour: when the decoder is
//! between frames and a whole frame is already buffered, [`Announced::decode`] reads the
//! header, checks the limit and splits the body off in one inlined step. Only a frame that
//! is not complete yet, an oversized one, or a broken stream goes through the states.
//! A frame that spans reads has its whole body reserved as soon as its header has been
//! read and its length checked, so the reads that complete it land in place.

use std::mem;

use bytes::{Buf, Bytes, BytesMut};

use super::{FramingError, lost_boundary, skip_reported};

/// What the front of a read buffer holds, as far as a header is concerned.
#[derive(Debug)]
pub(crate) enum Head<M> {
    /// A complete header of `len` bytes announcing a body of `body_len` bytes, and
    /// whatever else the header carries (`meta`).
    Complete { len: usize, body_len: u64, meta: M },
    /// The header is not complete: it takes at least `needed` bytes, more than are
    /// buffered. `needed` must already have been checked against any header limit: the
    /// decoder reserves it.
    Incomplete { needed: usize },
}

/// How a length-announcing codec reads its header.
pub(crate) trait Header {
    /// What a header carries besides the body length (the JSON object; `()` for plain
    /// lengths), handed back with the body.
    type Meta;

    /// The largest body accepted, in bytes.
    fn max_body_len(&self) -> u64;

    /// Reads the header at the front of `src` without consuming anything.
    ///
    /// # Errors
    /// A header that cannot be understood, or one over a header limit: the stream
    /// position is lost, and the decoder stays failed.
    fn read(&self, src: &[u8]) -> Result<Head<Self::Meta>, FramingError>;
}

/// Where the decoder is in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State<M> {
    /// Between frames: the next bytes are a header.
    Head,
    /// A header of `header_len` bytes has been consumed; waiting for `body_len` bytes.
    Body { header_len: usize, body_len: usize, meta: M },
    /// Skipping the rest of an oversized body that was already reported.
    Skip(u64),
    /// A header could not be read; the stream position is lost.
    Failed(String),
}

/// A complete frame at the front of the read buffer: what its header carried, and how
/// many header bytes (still buffered) and body bytes to cut.
struct Found<M> {
    meta: M,
    header_len: usize,
    body_len: usize,
}

/// The decoder shared by the length-announcing codecs: `H` reads the header, this does
/// the rest. Yields the header's `meta` and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announced<H: Header> {
    pub(crate) header: H,
    state: State<H::Meta>,
}

impl<H: Header> Announced<H> {
    pub(crate) fn new(header: H) -> Self {
        Announced { header, state: State::Head }
    }

    /// Decodes the next frame, if it is complete; see the module documentation.
    #[inline(always)]
    pub(crate) fn decode(&mut self, src: &mut BytesMut) -> Result<Option<(H::Meta, Bytes)>, FramingError> {
        let Some(Found { meta, header_len, body_len }) = self.find(src)? else { return Ok(None) };
        Ok(Some((meta, cut(src, header_len, body_len))))
    }

    /// Finds the next complete frame at the front of `src`; the caller cuts it.
    ///
    /// Every path ends in the one `cut` of [`decode`](Self::decode), so the fast path
    /// hands back two lengths, not a frame: measured, a frame built here and merged with
    /// the slow paths' frames went through a stack slot, and reading it back stalled on
    /// the stores `split_to` had just made, a third of a 16-byte frame's decode time.
    #[inline(always)]
    fn find(&mut self, src: &mut BytesMut) -> Result<Option<Found<H::Meta>>, FramingError> {
        if let State::Head = self.state {
            return match self.header.read(src) {
                // The fast path: a whole frame within the limit is buffered.
                Ok(Head::Complete { len, body_len, meta })
                    if body_len <= self.header.max_body_len() && body_len <= (src.len() - len) as u64 =>
                {
                    Ok(Some(Found { meta, header_len: len, body_len: body_len as usize }))
                }
                head => self.start(src, head),
            };
        }
        self.resume(src)
    }

    /// Between frames, with a header that did not take the fast path.
    #[inline(never)]
    fn start(
        &mut self,
        src: &mut BytesMut,
        head: Result<Head<H::Meta>, FramingError>,
    ) -> Result<Option<Found<H::Meta>>, FramingError> {
        let (header_len, body_len, meta) = match head {
            Ok(Head::Complete { len, body_len, meta }) => (len, body_len, meta),
            Ok(Head::Incomplete { needed }) => {
                // `needed` is within any header limit (the contract of `Header::read`).
                src.reserve(needed.saturating_sub(src.len()));
                return Ok(None);
            }
            Err(err) => {
                self.state = State::Failed(format!("stream lost after an earlier error: {err}"));
                return Err(err);
            }
        };
        let max = self.header.max_body_len();
        if body_len > max {
            src.advance(header_len);
            self.state = State::Skip(body_len);
            return Err(FramingError::FrameTooLarge { len: body_len, max });
        }
        // `body_len <= max`, and every limit is a usize, so this cannot truncate.
        let body_len = body_len as usize;
        if src.len() - header_len >= body_len {
            return Ok(Some(Found { meta, header_len, body_len }));
        }
        src.advance(header_len);
        // Checked against the limit above: reserve the whole body now, so that the reads
        // completing it are copied into place once instead of growing the buffer by steps.
        src.reserve(body_len - src.len());
        self.state = State::Body { header_len, body_len, meta };
        Ok(None)
    }

    /// Inside a frame, skipping one, or failed.
    #[inline(never)]
    fn resume(&mut self, src: &mut BytesMut) -> Result<Option<Found<H::Meta>>, FramingError> {
        match self.state {
            State::Head => self.find(src),
            State::Body { body_len, .. } => {
                if src.len() < body_len {
                    return Ok(None);
                }
                let State::Body { meta, .. } = mem::replace(&mut self.state, State::Head) else {
                    unreachable!("matched State::Body above")
                };
                // The header was consumed when the frame started.
                Ok(Some(Found { meta, header_len: 0, body_len }))
            }
            State::Skip(remaining) => match skip_reported(src, remaining) {
                0 => {
                    self.state = State::Head;
                    self.find(src)
                }
                left => {
                    self.state = State::Skip(left);
                    Ok(None)
                }
            },
            State::Failed(ref reason) => Err(lost_boundary(src, reason)),
        }
    }

    /// Whether the decoder is between frames (no frame started, skipped or failed).
    #[cfg(test)]
    pub(crate) fn is_between_frames(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// Decodes at end of stream: a frame if one is complete, `Truncated` if the stream
    /// ended inside one (what was buffered is dropped), otherwise `None`.
    pub(crate) fn decode_eof(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<(H::Meta, Bytes)>, FramingError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        let got = src.len() as u64;
        let truncated = match self.state {
            State::Head if got > 0 => {
                let expected = match self.header.read(src) {
                    Ok(Head::Incomplete { needed }) => needed as u64,
                    // `decode` returned no frame and no error, so the header is incomplete.
                    _ => got + 1,
                };
                FramingError::Truncated { expected, got }
            }
            State::Body { header_len, body_len, .. } => {
                let header_len = header_len as u64;
                FramingError::Truncated { expected: header_len + body_len as u64, got: header_len + got }
            }
            _ => return Ok(None),
        };
        src.clear();
        self.state = State::Head;
        Err(truncated)
    }
}

/// Cuts a frame of a `header_len`-byte header and a `body_len`-byte body off the front
/// of `src` and returns the body, without copying.
///
/// Header and body are cut out together and the header is dropped from the frozen frame:
/// one call into `bytes` per frame instead of two (`BytesMut::advance` and `split_to`
/// are not inlined across crates; `Bytes::advance` is).
#[inline(always)]
pub(crate) fn cut(src: &mut BytesMut, header_len: usize, body_len: usize) -> Bytes {
    let mut frame = src.split_to(header_len + body_len).freeze();
    frame.advance(header_len);
    frame
}
