# The yadtq image: the package plus the examples, for workers and clients.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY yadtq ./yadtq
RUN pip install --no-cache-dir .
COPY examples ./examples
ENV PYTHONUNBUFFERED=1
CMD ["yadtq", "--help"]
