# The collector and Jaeger images have no shell or HTTP client for a health check;
# add busybox's static wget to a pinned upstream image.
ARG BASE
FROM busybox:1.36.1-musl AS busybox
FROM ${BASE}
COPY --from=busybox /bin/wget /usr/local/bin/wget
