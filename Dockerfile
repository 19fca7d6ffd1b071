# callvault worker / CLI image. The embedded stack (Tansu, moto) is not included:
# in containers callvault talks to a real Kafka and S3-compatible store.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY deploy/constraints.txt ./deploy/
COPY services ./services
# The versions `make test` passed with, not whatever the index has today.
RUN pip install -c deploy/constraints.txt . && useradd --uid 10001 --no-create-home callvault
USER 10001
ENTRYPOINT ["callvault"]
CMD ["worker"]
