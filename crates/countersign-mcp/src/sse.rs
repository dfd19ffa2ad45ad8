//! Server-Sent Events as the Streamable HTTP transport uses them: an incremental parser that
//! keeps each event's raw text (so that events the gate does not own are relayed byte for
//! byte) next to its `data`, and the writer for events the gate sends itself.

/// One event: its text as received (with the blank line that ends it) and its data lines
/// joined. `data` is `None` for events without data (comments, priming events, `retry:`).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub raw: String,
    pub data: Option<String>,
}

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: String,
}

impl Parser {
    /// Feeds a chunk; returns the events it completed. Bytes that are not UTF-8 are replaced
    /// (an MCP stream is UTF-8 JSON; nothing is lost for a valid one).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut events = Vec::new();
        while let Some((end, separator)) = boundary(&self.buffer) {
            let raw: String = self.buffer.drain(..end + separator).collect();
            events.push(parse(raw));
        }
        events
    }

    /// What is left when the stream ends (an event without its closing blank line).
    pub fn finish(self) -> Option<Event> {
        (!self.buffer.trim().is_empty()).then(|| parse(self.buffer))
    }
}

fn boundary(text: &str) -> Option<(usize, usize)> {
    ["\r\n\r\n", "\n\n", "\r\r"]
        .iter()
        .filter_map(|sep| text.find(sep).map(|at| (at, sep.len())))
        .min()
}

fn parse(raw: String) -> Event {
    let mut data: Option<String> = None;
    for line in raw.lines() {
        if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    Event { raw, data }
}

/// An event carrying one JSON-RPC message.
pub fn message(json: &str) -> String {
    format!("event: message\ndata: {json}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunks() {
        let mut parser = Parser::default();
        assert!(
            parser
                .push(b"id: 1\nretry: 500\ndata: \n\nevent: mess")
                .len()
                == 1
        );
        let events = parser.push(b"age\ndata: {\"a\":\ndata: 1}\n\n: keep-alive\n\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data.as_deref(), Some("{\"a\":\n1}"));
        assert_eq!(events[0].raw, "event: message\ndata: {\"a\":\ndata: 1}\n\n");
        assert_eq!(events[1].data, None);
        assert!(parser.finish().is_none());
    }
}
