"""Write-behind: the queue of writes (``queue``), and the senders that deliver it from a thread
(``threaded``) or an asyncio task (``asynchronous``)."""
