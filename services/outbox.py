"""Durable outbox worker: placeholder until queued delivery lands."""


def process_due_jobs(env):
    return 0
