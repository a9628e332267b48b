"""The Work Guide: work items, My Work, the record-page component, due dates and mails."""
