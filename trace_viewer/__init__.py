"""The embedded trace viewer: OTLP intake over HTTP (4318) and gRPC (4317), SQLite store,
Jaeger-shaped query API and a self-contained waterfall UI (16686). No Docker, no Jaeger
binary needed."""
