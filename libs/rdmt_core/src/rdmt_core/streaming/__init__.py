"""The streaming services: RDMT as independent processes on Apache Kafka.

Kafka stays at the edges. The decisions (which monitor a file goes to, what a message that failed
becomes, how long to wait before a retry) are pure functions in :mod:`.routing`, :mod:`.failures`
and :mod:`.messages`; :mod:`.runner` is the one consume-process-produce loop, and the services
(:mod:`.ingest`, :mod:`.monitor_service`) are a few lines of wiring around it. Topic names, keys and
sizes are listed once, in :mod:`.topics`; connection settings come from :mod:`.settings`.
"""
