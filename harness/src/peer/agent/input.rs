//! The agent's input, read on a thread of its own, so that its end is seen while a
//! request is at work: a `stop` may wait up to ten minutes and a workload a minute, and
//! the end of the input means the runner is gone (its ssh connection dropped, it was
//! killed), so nobody is left to read the answer.
//!
//! The thread reads lines ([`LineReader`], at most the line limit each) into a channel of
//! [`QUEUE`] events; while a request is at work, [`Input::ended`] takes the lines that
//! arrive into a queue of at most [`MAX_WAITING`] (they are served afterwards, in order)
//! and returns when the input ends. Memory held is bounded by those two numbers times the
//! line limit; past them the thread waits, and the work finishes in its own bounded time.

use std::collections::VecDeque;
use std::io::{self, BufRead};

use tokio::sync::mpsc;

use super::lines::{LineEvent, LineReader};

/// Events the reading thread may hold before the agent takes them.
pub const QUEUE: usize = 2;
/// Lines that arrived during a request and wait for it to finish.
pub const MAX_WAITING: usize = 4;

/// The agent's input, as events; see the module docs.
pub struct Input {
    events: mpsc::Receiver<io::Result<LineEvent>>,
    waiting: VecDeque<io::Result<LineEvent>>,
}

impl Input {
    /// Starts reading `input` on a thread named `socklab-agent-input`, lines of at most
    /// `max_line` bytes. The thread ends with the input, or when the agent has gone and
    /// the next line arrives.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(input: impl BufRead + Send + 'static, max_line: usize) -> io::Result<Input> {
        let (tx, events) = mpsc::channel(QUEUE);
        std::thread::Builder::new().name("socklab-agent-input".into()).spawn(move || {
            let mut lines = LineReader::new(input, max_line);
            // Each pass reads one line; the loop ends at the end of the input (or an
            // error) or when nobody takes the events any more.
            loop {
                let event = lines.next_line();
                let last = !matches!(event, Ok(LineEvent::Line(_) | LineEvent::TooLong { .. }));
                if tx.blocking_send(event).is_err() || last {
                    return;
                }
            }
        })?;
        Ok(Input { events, waiting: VecDeque::new() })
    }

    /// The next event: one that waited during a request, else the next from the thread.
    /// Blocks; call it outside the agent's runtime.
    ///
    /// # Errors
    /// The input's read error.
    pub fn next_event(&mut self) -> io::Result<LineEvent> {
        if let Some(event) = self.waiting.pop_front() {
            return event;
        }
        // A reading thread that ended without a last event (it panicked) ended the input.
        self.events.blocking_recv().unwrap_or(Ok(LineEvent::Eof))
    }

    /// Returns once the input has ended (at a line boundary, mid-line, or with an error),
    /// keeping the lines that arrive before that for [`Input::next_event`]. With
    /// [`MAX_WAITING`] lines kept it reads no further and never returns: the request
    /// then runs to its own end.
    pub async fn ended(&mut self) {
        if self
            .waiting
            .iter()
            .any(|event| !matches!(event, Ok(LineEvent::Line(_) | LineEvent::TooLong { .. })))
        {
            return;
        }
        // Each pass takes one event; the loop ends at the input's end.
        while self.waiting.len() < MAX_WAITING {
            match self.events.recv().await {
                Some(Ok(event @ (LineEvent::Line(_) | LineEvent::TooLong { .. }))) => {
                    self.waiting.push_back(Ok(event));
                }
                Some(end) => {
                    self.waiting.push_back(end);
                    return;
                }
                None => {
                    self.waiting.push_back(Ok(LineEvent::Eof));
                    return;
                }
            }
        }
        std::future::pending::<()>().await;
    }

    /// How the input ended, once [`Input::ended`] returned: the last event kept.
    pub fn end(&mut self) -> io::Result<LineEvent> {
        self.waiting.pop_back().unwrap_or(Ok(LineEvent::Eof))
    }
}
