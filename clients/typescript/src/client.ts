/**
 * The client: fetch only, no dependencies, the same in Node 20+ and browsers.
 */

import {
  ApiError, ConfigurationError, ConnectionFailed, InvalidInput, ProtocolError, WaitTimeout, apiError,
} from "./errors.js";
import {
  type Action, type DecisionBody, HINTS, type Hints, type JsonObject, OUTCOME_STATUSES, type OutcomeStatus,
  type Status, type SubmitBody, VERDICTS, type Verdict, isFinal,
} from "./models.js";
import { SseParser, lines } from "./sse.js";

export const DEFAULT_URL = "http://127.0.0.1:7878";

/**
 * Longest single long-poll, in seconds. The server caps waits itself (default 300 s), but
 * Node's fetch gives up on a response whose headers take 300 s, so each poll asks for less
 * and the client polls again.
 */
const LONG_POLL_SECONDS = 60;
/** The server sends a comment every 15 s of silence on an event stream. */
const STREAM_IDLE_MS = 45_000;

const ACTION_NAME = /^[A-Za-z0-9._:/-]{1,200}$/;
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

export type WaitMode = "poll" | "sse";

export interface CountersignOptions {
  /** Default: `COUNTERSIGN_URL`, else `http://127.0.0.1:7878`. */
  url?: string;
  /** Default: `COUNTERSIGN_TOKEN`. */
  token?: string;
  /** How `wait` and `request` wait: long-poll (default) or the event stream. */
  waitMode?: WaitMode;
  /** Seconds of continuous failure to reach the server (or retryable answers) before giving up. */
  retryFor?: number;
  /** Another `fetch` (tests, proxies). */
  fetch?: typeof fetch;
}

export interface SubmitOptions {
  reasoning?: string;
  context?: JsonObject;
  confidence?: number;
  hints?: Hints;
  /** Names this request: asking again with it finds the same action. */
  idempotencyKey?: string;
  /**
   * Where the server POSTs the final status (signed per Standard Webhooks), if the action
   * waits for people; it must match the server's `callback_allow`.
   */
  callbackUrl?: string;
}

export interface WaitOptions {
  /** Seconds to wait for a decision; default: as long as it takes. Then `WaitTimeout`. */
  timeout?: number;
}

export type RequestOptions = SubmitOptions & WaitOptions;

interface SendOptions {
  body?: unknown;
  query?: Record<string, string | number>;
  /** `false`: a request that may have reached the server is not sent again. */
  resend?: boolean;
  timeoutMs?: number;
}

const environment = (): Record<string, string | undefined> =>
  (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};

export class Countersign {
  readonly url: string;
  readonly waitMode: WaitMode;
  readonly retryFor: number;
  readonly #token: string;
  readonly #fetch: typeof fetch;

  constructor(options: CountersignOptions = {}) {
    if (options === null || typeof options !== "object") {
      throw new InvalidInput(`options must be an object, not ${typeof options}`);
    }
    const url = options.url ?? (environment()["COUNTERSIGN_URL"] || DEFAULT_URL);
    const token = options.token ?? environment()["COUNTERSIGN_TOKEN"];
    if (typeof url !== "string") throw new InvalidInput(`url must be a string, not ${typeof url}`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigurationError(`url must be an http:// or https:// address, e.g. ${DEFAULT_URL}; got ${JSON.stringify(url)}`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new ConfigurationError(`url must be an http:// or https:// address, e.g. ${DEFAULT_URL}; got ${JSON.stringify(url)}`);
    }
    if (token === undefined || token === "") {
      throw new ConfigurationError(
        "no token: pass { token } or set COUNTERSIGN_TOKEN (create one with `countersign token create --role agent --name NAME`)",
      );
    }
    if (typeof token !== "string") throw new InvalidInput(`token must be a string, not ${typeof token}`);
    const waitMode = options.waitMode ?? "poll";
    if (waitMode !== "poll" && waitMode !== "sse") {
      throw new InvalidInput(`waitMode must be "poll" or "sse", got ${JSON.stringify(waitMode)}`);
    }
    const retryFor = options.retryFor ?? 60;
    if (typeof retryFor !== "number" || !(retryFor >= 0)) {
      throw new InvalidInput(`retryFor must be a number of seconds >= 0, got ${String(retryFor)}`);
    }
    this.url = url.replace(/\/+$/, "");
    this.#token = token;
    this.waitMode = waitMode;
    this.retryFor = retryFor;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /**
   * Asks to run `action` and resolves with the final decision: at once when the policy allows
   * or denies it, else when the reviewers (or the SLA) decide. Check {@link mayRun} and run
   * with the answer's `args`. With an `idempotencyKey`, asking again after a restart finds the
   * same action.
   */
  async request(action: string, args: JsonObject = {}, options: RequestOptions = {}): Promise<Action> {
    const timeout = checkTimeout(options.timeout);
    const [submitted, replayed] = await this.#submit(action, args, options);
    if (isFinal(submitted.status)) {
      // A replay answers as the first submission did; the current state may hold more.
      return replayed ? this.get(submitted.id) : submitted;
    }
    return this.wait(submitted.id, timeout === undefined ? {} : { timeout });
  }

  /** Files the action and resolves with it as classified, without waiting. */
  async submit(action: string, args: JsonObject = {}, options: SubmitOptions = {}): Promise<Action> {
    return (await this.#submit(action, args, options))[0];
  }

  async #submit(action: string, args: JsonObject, options: SubmitOptions): Promise<[Action, boolean]> {
    const body = submitBody(action, args, options);
    // Without a key a lost answer cannot be told from a lost request: only a request that
    // never left is sent again.
    const response = await this.#send("POST", "/v1/actions", { body, resend: body.idempotency_key !== undefined });
    return [parseAction(await json(response)), response.status === 200];
  }

  /** The action as it is now. */
  async get(id: string): Promise<Action> {
    return parseAction(await json(await this.#send("GET", actionPath(id))));
  }

  /**
   * Waits until the action leaves `pending`. Survives dropped connections and server
   * restarts: it reconnects and carries on with the action's current state.
   */
  async wait(id: string, options: WaitOptions = {}): Promise<Action> {
    const timeout = checkTimeout(options.timeout);
    const deadline = timeout === undefined ? undefined : Date.now() + timeout * 1000;
    return this.waitMode === "sse" ? this.#waitStream(id, deadline) : this.#waitPoll(id, deadline);
  }

  /** Withdraws a pending action. */
  async cancel(id: string): Promise<Action> {
    return parseAction(await json(await this.#send("POST", actionPath(id, "/cancel"))));
  }

  /** Records how running the action went. */
  async reportOutcome(id: string, status: OutcomeStatus, detail?: unknown): Promise<Action> {
    if (!OUTCOME_STATUSES.includes(status)) {
      throw new InvalidInput(`outcome status must be succeeded or failed, got ${JSON.stringify(status)}`);
    }
    const body: { status: OutcomeStatus; detail?: unknown } = { status };
    if (detail !== undefined) body.detail = checkJson("detail", detail);
    return parseAction(await json(await this.#send("POST", actionPath(id, "/outcome"), { body })));
  }

  /** A reviewer's verdict (a reviewer token). */
  async decide(
    id: string,
    verdict: Verdict,
    options: { args?: JsonObject; reason?: string; confirm?: string } = {},
  ): Promise<Action> {
    if (!VERDICTS.includes(verdict)) {
      throw new InvalidInput(`verdict must be approve, reject or modify, got ${JSON.stringify(verdict)}`);
    }
    const body: DecisionBody = { verdict };
    if (options.args !== undefined) body.args = jsonObject("args", options.args);
    for (const name of ["reason", "confirm"] as const) {
      const value = options[name];
      if (value === undefined) continue;
      if (typeof value !== "string") throw new InvalidInput(`${name} must be a string, not ${typeof value}`);
      body[name] = value;
    }
    const response = await this.#send("POST", actionPath(id, "/decisions"), { body, resend: false });
    return parseAction(await json(response));
  }

  approve(id: string, options: { reason?: string } = {}): Promise<Action> {
    return this.decide(id, "approve", options);
  }

  reject(id: string, options: { reason: string }): Promise<Action> {
    return this.decide(id, "reject", options);
  }

  modify(id: string, args: JsonObject, options: { reason?: string } = {}): Promise<Action> {
    return this.decide(id, "modify", { ...options, args });
  }

  /** The review queue (pending, oldest deadline first) or the actions in another status. */
  async queue(options: { status?: Status; action?: string; limit?: number } = {}): Promise<Action[]> {
    const query: Record<string, string | number> = { status: options.status ?? "pending", limit: options.limit ?? 50 };
    if (options.action !== undefined) query["action"] = options.action;
    const page = await json(await this.#send("GET", "/v1/actions", { query }));
    const items = (page as { items?: unknown } | null)?.items;
    if (!Array.isArray(items)) throw new ProtocolError("expected an action page {items, next_cursor}");
    return items.map(parseAction);
  }

  async #send(method: string, path: string, options: SendOptions = {}): Promise<Response> {
    const giveUp = Date.now() + this.retryFor * 1000;
    const resend = options.resend ?? true;
    let url = this.url + path;
    if (options.query) url += "?" + new URLSearchParams(Object.entries(options.query).map(([k, v]) => [k, String(v)]));
    const headers: Record<string, string> = { Authorization: `Bearer ${this.#token}` };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        const init: RequestInit = { method, headers, signal: AbortSignal.timeout(options.timeoutMs ?? 30_000) };
        if (options.body !== undefined) init.body = JSON.stringify(options.body);
        response = await this.#fetch(url, init);
      } catch (error) {
        if (!(resend || neverSent(error)) || Date.now() >= giveUp) {
          throw new ConnectionFailed(`${method} ${url}: ${describe(error)}`, { cause: error });
        }
        await sleep(backoff(attempt));
        continue;
      }
      if (response.status < 400) return response;
      const failure = apiError(response.status, await response.json().catch(() => undefined));
      if (!failure.retryable || Date.now() >= giveUp) throw failure;
      await sleep(backoff(attempt));
    }
  }

  async #waitPoll(id: string, deadline: number | undefined): Promise<Action> {
    for (;;) {
      let wait = LONG_POLL_SECONDS;
      // Rounded up, so that a wait that ends pending ends past the deadline.
      if (deadline !== undefined) wait = Math.min(wait, Math.ceil(Math.max(0, deadline - Date.now()) / 1000));
      const response = await this.#send("GET", actionPath(id), { query: { wait }, timeoutMs: (wait + 15) * 1000 });
      const action = parseAction(await json(response));
      if (isFinal(action.status)) return action;
      if (deadline !== undefined && Date.now() >= deadline) throw new WaitTimeout(action);
    }
  }

  async #waitStream(id: string, deadline: number | undefined): Promise<Action> {
    const url = this.url + actionPath(id, "/events");
    let last: Action | undefined;
    let giveUp = Date.now() + this.retryFor * 1000;
    for (let attempt = 0; ; attempt++) {
      if (deadline !== undefined && Date.now() >= deadline) throw new WaitTimeout(last ?? (await this.get(id)));
      const abort = new AbortController();
      let idle: ReturnType<typeof setTimeout> | undefined;
      const quiet = () => {
        clearTimeout(idle);
        const left = deadline === undefined ? STREAM_IDLE_MS : Math.min(STREAM_IDLE_MS, deadline - Date.now());
        idle = setTimeout(() => abort.abort(), Math.max(1, left));
      };
      try {
        quiet();
        const response = await this.#fetch(url, {
          headers: { Authorization: `Bearer ${this.#token}`, Accept: "text/event-stream" },
          signal: abort.signal,
        });
        if (response.status >= 400) throw apiError(response.status, await response.json().catch(() => undefined));
        if (!response.body) throw new ProtocolError("an event stream without a body");
        const parser = new SseParser();
        for await (const line of lines(response.body)) {
          quiet();
          for (const event of parser.feed(line)) {
            if (event.event !== "status") continue;
            last = parseAction(parseJson(event.data));
            attempt = 0;
            giveUp = Date.now() + this.retryFor * 1000;
            if (isFinal(last.status)) {
              abort.abort();
              return last;
            }
          }
        }
      } catch (error) {
        if (error instanceof ApiError) {
          if (!error.retryable || Date.now() >= giveUp) throw error;
        } else if (error instanceof ProtocolError) {
          throw error;
        } else if (!abort.signal.aborted && Date.now() >= giveUp) {
          throw new ConnectionFailed(`GET ${url}: ${describe(error)}`, { cause: error });
        }
      } finally {
        clearTimeout(idle);
      }
      // The stream ended before a final status (restart, proxy, network): reconnect; the
      // first event of the new stream is the action as it is now.
      await sleep(backoff(attempt));
    }
  }
}

export function actionPath(id: string, suffix = ""): string {
  if (typeof id !== "string" || id === "") throw new InvalidInput(`an action id must be a non-empty string, got ${JSON.stringify(id)}`);
  return `/v1/actions/${encodeURIComponent(id)}${suffix}`;
}

function checkTimeout(timeout: unknown): number | undefined {
  if (timeout === undefined) return undefined;
  if (typeof timeout !== "number" || !(timeout >= 0)) {
    throw new InvalidInput(`timeout must be a number of seconds >= 0, got ${String(timeout)}`);
  }
  return timeout;
}

function checkJson(name: string, value: unknown): unknown {
  try {
    const text = JSON.stringify(value);
    if (text === undefined) throw new Error("not a JSON value");
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new InvalidInput(`${name} must be JSON-serializable: ${describe(error)}`);
  }
}

function jsonObject(name: string, value: unknown): JsonObject {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidInput(`${name} must be a plain object (a JSON object), not ${Array.isArray(value) ? "an array" : typeof value}`);
  }
  return checkJson(name, value) as JsonObject;
}

export function submitBody(action: unknown, args: unknown, options: SubmitOptions): SubmitBody {
  if (typeof action !== "string") throw new InvalidInput(`action must be a string, not ${typeof action}`);
  if (!ACTION_NAME.test(action)) {
    throw new InvalidInput(`action ${JSON.stringify(action)} must be 1 to 200 letters, digits or ._-:/ (e.g. refund.create)`);
  }
  const body: SubmitBody = { action, args: jsonObject("args", args ?? {}) };
  const { reasoning, context, confidence, hints, idempotencyKey, callbackUrl } = options;
  if (reasoning !== undefined) {
    if (typeof reasoning !== "string") throw new InvalidInput(`reasoning must be a string, not ${typeof reasoning}`);
    body.reasoning = reasoning;
  }
  if (context !== undefined) body.context = jsonObject("context", context);
  if (confidence !== undefined) {
    if (typeof confidence !== "number" || !Number.isFinite(confidence) || confidence < 0 || confidence > 1) {
      throw new InvalidInput(`confidence must be a number from 0 to 1, got ${String(confidence)}`);
    }
    body.confidence = confidence;
  }
  if (hints !== undefined) {
    if (hints === null || typeof hints !== "object") throw new InvalidInput("hints must be an object");
    for (const [key, value] of Object.entries(hints)) {
      if (!(HINTS as readonly string[]).includes(key)) throw new InvalidInput(`unknown hint ${JSON.stringify(key)}; expected one of ${HINTS.join(", ")}`);
      if (typeof value !== "boolean") throw new InvalidInput(`hint ${JSON.stringify(key)} must be true or false, got ${String(value)}`);
    }
    body.hints = { ...hints };
  }
  if (idempotencyKey !== undefined) {
    if (typeof idempotencyKey !== "string" || !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new InvalidInput(`idempotencyKey must be 1 to 255 printable ASCII characters, got ${JSON.stringify(idempotencyKey)}`);
    }
    body.idempotency_key = idempotencyKey;
  }
  if (callbackUrl !== undefined) {
    if (typeof callbackUrl !== "string" || callbackUrl.length === 0 || callbackUrl.length > 2048) {
      throw new InvalidInput(`callbackUrl must be a URL of 1 to 2048 characters, got ${JSON.stringify(callbackUrl)}`);
    }
    body.callback_url = callbackUrl;
  }
  return body;
}

async function json(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ProtocolError(`expected JSON from ${response.url}, got HTTP ${response.status} ${response.headers.get("content-type") ?? ""}`);
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ProtocolError(`an event's data is not JSON: ${text.slice(0, 80)}`);
  }
}

/** Checks the fields the client relies on; the object is kept whole (unknown fields too). */
export function parseAction(value: unknown): Action {
  const action = value as Partial<Action> | null;
  if (
    !action || typeof action !== "object" || typeof action.id !== "string" || typeof action.action !== "string" ||
    typeof action.status !== "string" || typeof action.args !== "object" || !Array.isArray(action.decisions)
  ) {
    throw new ProtocolError("not an action object");
  }
  return action as Action;
}

function neverSent(error: unknown): boolean {
  const code = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

/** 100 ms doubling to 2 s, with jitter so that agents cut off together do not return in step. */
function backoff(attempt: number): number {
  return Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
