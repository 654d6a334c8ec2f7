//! A case's parameters, parsed once — the framing text as a [`Wire`], the impairment spec
//! — by the one constructor that `validate`, `run` and `evaluate` all call; and the
//! refusals every check shares, which come before a check's own.

use bytes::Bytes;
use socklab_harness::framing::FramingStrategy;
use socklab_harness::impair::Impairment;
use socklab_harness::params::Invalid;
use socklab_harness::peer::Behaviour;

use super::Params;
use super::wire::{Wire, message};

/// The parameters of a case, and what their texts mean.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    /// As given.
    pub params: Params,
    /// The framing (`framing`).
    pub wire: Wire,
    /// Payload bytes per message: `message_size`, or N for `fixed:N`.
    pub message_size: usize,
    /// What the relay in front of the server does (`impair`).
    pub impair: Impairment,
}

impl Setup {
    /// Parses `params`.
    ///
    /// # Errors
    /// [`Invalid`] naming `framing` or `impair`, when it does not parse.
    pub(crate) fn new(params: &Params) -> Result<Setup, Invalid> {
        let strategy: FramingStrategy =
            params.framing.parse().map_err(|e| Invalid::new("framing", format!("{e}")))?;
        let message_size = match strategy {
            FramingStrategy::FixedSize(n) => n,
            _ => params.message_size as usize,
        };
        let impair =
            Impairment::parse(&params.impair).map_err(|e| Invalid::new("impair", format!("impair: {e}")))?;
        Ok(Setup { params: params.clone(), wire: Wire(strategy), message_size, impair })
    }

    /// The messages of one conversation: `messages` of `message_size` bytes each.
    pub(crate) fn messages(&self) -> Vec<Bytes> {
        (0..self.params.messages).map(|i| message(i as u32, self.message_size)).collect()
    }

    /// Payload bytes of one conversation.
    pub(crate) fn conversation_bytes(&self) -> u64 {
        self.params.messages * self.message_size as u64
    }

    /// Why no check applies to this framing with these messages and this behaviour, in
    /// one line; `Ok` when checks may.
    ///
    /// # Errors
    /// [`Invalid`] naming `framing` or `message_size`.
    pub(crate) fn refusal(&self) -> Result<(), Invalid> {
        let (wire, framing, size) = (self.wire, &self.params.framing, self.message_size);
        let source = self.params.behaviour == Behaviour::Source;
        if size < 16 {
            return Err(Invalid::new(
                "framing",
                format!(
                    "{framing} records are {size} bytes; messages carry a sequence number and a checksum, so they need 16 at least"
                ),
            ));
        }
        if let Some(most) = wire.max_payload()
            && size as u64 > most
            && !matches!(wire.0, FramingStrategy::FixedSize(_))
        {
            return Err(Invalid::new(
                "message_size",
                format!("{framing} carries at most {most} bytes per frame; message_size is {size}"),
            ));
        }
        if wire.is_stop_and_wait() && source {
            return Err(Invalid::new(
                "framing",
                "stop-and-wait is request and reply: a source has no request to answer, so use a stream framing",
            ));
        }
        if wire.is_raw() && source {
            return Err(Invalid::new(
                "framing",
                "a source over raw framing has no boundaries to verify its messages by; use a framing",
            ));
        }
        Ok(())
    }
}
