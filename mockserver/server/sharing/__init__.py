"""The server's side of state shared by processes: the coordinator that keeps one process in
step, the journal records, and the admin API's operations on the shared store."""
