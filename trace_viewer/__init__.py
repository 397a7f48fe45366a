"""The embedded trace viewer: OTLP/HTTP intake (4318), SQLite store, Jaeger-shaped query API
and a self-contained waterfall UI (16686). No Docker, no Jaeger binary needed."""
