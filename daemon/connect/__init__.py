"""Amazon Connect on the server side: what the daemon asks Connect instead of trusting a tab.

`client` speaks to Connect's API through the AWS SDK (aiobotocore); `confirm` checks each new
contact with Connect before the core holds it; `sandbox` is a Connect API simulator for tests
and the demo, checked against botocore's own service model (`model`).
"""
