"""Notifications through Apprise (CONTRACT section 3, NOTIFY_URLS and NOTIFY_EVENTS).

`tap` takes the events from the structured log, `messages` turns them into short exact
messages, `actor.Notifier` queues and sends them (bounded, retried, never in an order's way),
`sender` talks to Apprise, `summary` is the daily summary at the session close."""
