//! Azure Activity Log records (diagnostic settings, REST/portal export, Event Grid).
