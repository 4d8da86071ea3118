"""Events out of bumpfit: an outbox written in the same transaction as each job's end, delivered
after commit to webhooks (Standard Webhooks signatures) and, opt-in, to MLflow."""
