package store

// NotificationQuery is the history's select, for tests that look at its plan.
const NotificationQuery = `SELECT ` + notificationCols + notificationFrom

// InsertMessageBatchSQL is the ingester's insert, for tests of its plan.
const InsertMessageBatchSQL = insertMessageBatch
