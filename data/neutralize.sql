-- A neutralized copy of a database must never talk to production partners.
UPDATE bj_api_sync_config
   SET paused = TRUE, pause_reason = 'neutralized'
 WHERE request_type = 'out';
