# One slim image for all four services; the command picks the service:
#   docker run ordersim python -m inventory_service
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 ordersim
WORKDIR /app

COPY pyproject.toml README.md ./
COPY common ./common
COPY order_service ./order_service
COPY inventory_service ./inventory_service
COPY payment_service ./payment_service
COPY shipping_service ./shipping_service
COPY trace_viewer ./trace_viewer
COPY ordersim ./ordersim
RUN pip install ".[postgres]"

USER ordersim
ENV ORDERSIM_DATA_DIR=/home/ordersim/data
CMD ["python", "-m", "order_service"]
