// A scripted MCP client on the official TypeScript SDK (1.x, protocol 2025-11-25), driven by
// the Rust tests: one JSON step a line on stdin, one JSON line per answer or event on stdout.
// argv[2] is the transport: {"command": [...], "env": {...}} (stdio) or {"url": "..."}.
// Steps run concurrently, so that a test can approve while a call is held.
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";

interface Step {
  id: string;
  op: "list" | "call" | "close";
  tool?: string;
  args?: Record<string, unknown>;
  timeoutMs?: number;
  progress?: boolean;
  resetOnProgress?: boolean;
}

interface TransportSpec {
  command?: string[];
  env?: Record<string, string>;
  url?: string;
}

function emit(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

function transportFor(spec: TransportSpec): Transport {
  if (spec.url !== undefined) {
    return new StreamableHTTPClientTransport(new URL(spec.url));
  }
  const [command, ...args] = spec.command ?? [];
  if (command === undefined) {
    throw new Error("the transport needs a command or a url");
  }
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined) env[key] = value;
  }
  return new StdioClientTransport({ command, args, env: { ...env, ...(spec.env ?? {}) }, stderr: "inherit" });
}

async function run(client: Client, step: Step): Promise<void> {
  try {
    if (step.op === "list") {
      const listed = await client.listTools();
      emit({ id: step.id, tools: listed.tools.map((t) => t.name) });
    } else if (step.op === "call") {
      const result = await client.callTool(
        { name: step.tool ?? "", arguments: step.args ?? {} },
        undefined,
        {
          timeout: step.timeoutMs,
          resetTimeoutOnProgress: step.resetOnProgress ?? false,
          onprogress: step.progress === true
            ? (p) => emit({ id: step.id, event: "progress", progress: p.progress, message: p.message })
            : undefined,
        },
      );
      emit({ id: step.id, result });
    } else {
      await client.close();
      emit({ id: step.id, closed: true });
      process.exit(0);
    }
  } catch (error) {
    const e = error as { code?: number; message?: string };
    emit({ id: step.id, error: e.message ?? String(error), code: e.code ?? null });
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? "{}") as TransportSpec;
  const client = new Client({ name: "countersign-test-ts", version: "1.0.0" });
  await client.connect(transportFor(spec));
  emit({ id: "connected", server: client.getServerVersion() ?? null });
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line.trim() !== "") void run(client, JSON.parse(line) as Step);
  });
  lines.on("close", () => {
    void client.close().then(() => process.exit(0));
  });
}

main().catch((error: unknown) => {
  emit({ id: "connected", error: String(error) });
  process.exit(1);
});
