"""Questions people ask of their telemetry, in DuckDB's SQL: the engines-agree suite and the
query benchmark ask them of a lake recorded by ``blocklake.demo``."""

from __future__ import annotations

QUESTIONS = {
    "error logs in a window": """
        SELECT time, level, target, message FROM log_entries
        WHERE level IN ('ERROR', 'WARN') ORDER BY time, message""",
    "p99 of a metric per minute per attribute": """
        SELECT date_trunc('minute', m.time) AS minute, p.properties['app'] AS app, m.name,
               approx_quantile(m.value, 0.99) AS p99, count(*) AS samples
        FROM measures m JOIN processes p ON m.process_id = p.process_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
    "slowest spans with their logs": """
        WITH slow AS (
            SELECT process_id, span_id, name, "begin", "end", duration_ns FROM thread_spans
            ORDER BY duration_ns DESC, span_id LIMIT 5)
        SELECT s.name, s.duration_ns, count(l.message) AS logs
        FROM slow s LEFT JOIN log_entries l
          ON l.process_id = s.process_id AND l.time >= s."begin" AND l.time <= s."end"
        GROUP BY s.name, s.duration_ns, s.span_id ORDER BY s.duration_ns DESC, s.span_id""",
    "span trees": """
        SELECT parent.name AS parent, child.name AS child, count(*) AS calls,
               max(child.depth) AS depth, sum(child.duration_ns) AS total_ns
        FROM thread_spans child JOIN thread_spans parent
          ON child.stream_id = parent.stream_id AND child.parent_span_id = parent.span_id
        GROUP BY parent.name, child.name ORDER BY parent, child""",
    "joins with process properties": """
        SELECT p.properties['build'] AS build, p.properties['missing'] AS missing, l.level,
               count(*) AS entries
        FROM log_entries l JOIN processes p ON l.process_id = p.process_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
    "text search in messages": """
        SELECT count(*) FILTER (WHERE message ILIKE '%DECLINED%') AS declined,
               count(*) FILTER (WHERE regexp_matches(message, 'order [0-9]+ done')) AS done,
               count(*) AS entries
        FROM log_entries""",
}
