package auditqueue

// PopAuditScript is the queue's script, for its test.
var PopAuditScript = popAuditScript
