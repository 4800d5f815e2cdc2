FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY paperboy paperboy
COPY subscriptions subscriptions
COPY digest digest
RUN pip install --no-cache-dir .
COPY . .
RUN useradd --create-home paperboy && mkdir -p var && chown paperboy var
USER paperboy
EXPOSE 8000
CMD ["gunicorn", "paperboy.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
