/** A `text/event-stream` reader: the body's lines, and an incremental event parser. */

export interface ServerEvent {
  event: string;
  data: string;
  id?: string;
}

/** The lines of a byte stream (LF or CRLF), decoded as UTF-8. */
export async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffered.indexOf("\n")) >= 0) {
        yield buffered.slice(0, end).replace(/\r$/, "");
        buffered = buffered.slice(end + 1);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

export class SseParser {
  #event = "";
  #id: string | undefined;
  #data: string[] = [];

  /** Feeds one line; returns the event it completes, if any. */
  feed(line: string): ServerEvent[] {
    if (line === "") {
      const done: ServerEvent[] = [];
      if (this.#data.length > 0) {
        const event: ServerEvent = { event: this.#event || "message", data: this.#data.join("\n") };
        if (this.#id !== undefined) event.id = this.#id;
        done.push(event);
      }
      this.#event = "";
      this.#data = [];
      return done;
    }
    if (line.startsWith(":")) return [];
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") this.#event = value;
    else if (name === "data") this.#data.push(value);
    else if (name === "id") this.#id = value;
    return [];
  }
}
