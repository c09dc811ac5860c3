/**
 * hgedge's log lines: one JSON object per line (Workers Logs indexes the fields), written to the
 * console stream of its level so that `wrangler tail` and the dashboard filter by it.
 */
export type LogLevel = "info" | "warn" | "error";

export function logEvent(level: LogLevel, event: string, fields: Record<string, unknown> | object = {}): void {
  const line = JSON.stringify({ level, event, ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
