package store

// NotificationQuery is the history's select, for tests that look at its plan.
const NotificationQuery = `SELECT ` + notificationCols + notificationFrom
