#!/bin/sh
# init.d (or post.d) collector: prints application data as one JSON object.
# The agent puts it in the SecureBeat under the application "mailstats".
# Here: messages in the mail queue folder and the size of the scan log.
queue="${MAILSTATS_QUEUE:-$NOC_ROOT/var/spool/mqueue}"
log="${MAILSTATS_LOG:-$NOC_ROOT/var/log/vscreen.log}"
queued=$(find "$queue" -type f 2>/dev/null | wc -l | tr -d ' ')
scanned=$(grep -c 'scanned' "$log" 2>/dev/null || echo 0)
printf '{"queued": %s, "scanned": %s}\n' "$queued" "$scanned"
