-- Version 4: assistance on application (依申请救助, issue 21).
--
-- No table changes: a settlement's JSON record gains its application (the
-- documents, who submitted it, its approval with the payment reference, or
-- how it was closed), and rows written before read it as absent (a window
-- settlement). The version is raised so that an older binary, which would
-- rewrite an application (approving nothing, reversing it as a hospital
-- would) without its application and so turn it into a window settlement,
-- refuses this database.
COMMENT ON TABLE settlement IS
    'settlements at the window and on application; record holds the application when there is one (schema 4)';
