--------------------------------------------------------------------------
-- State machines (definitions are data; machine.c caches them per backend)
--------------------------------------------------------------------------

CREATE TABLE order_ext.machines (
    machine           text PRIMARY KEY
                      CHECK (machine ~ '^[a-z][a-z0-9_]{0,62}$'),
    initial_status    text NOT NULL CHECK (initial_status ~ '^[a-z][a-z0-9_]{0,62}$'),
    terminal_statuses text[] NOT NULL DEFAULT '{}'
                      CONSTRAINT machines_terminal_statuses_check
                      CHECK (cardinality(terminal_statuses) = 0
                             OR array_to_string(terminal_statuses, ',', '#')
                                ~ '^[a-z][a-z0-9_]{0,62}(,[a-z][a-z0-9_]{0,62})*$'),
    description       text
);
COMMENT ON TABLE order_ext.machines IS
'One row per order state machine: orders start in initial_status; terminal_statuses end an order''s life (archivable, no timers).';

-- (machine, from_status, event) -> to_status.  Deliberately no unique key on
-- (machine, from_status, event): a broken machine may be inserted, and
-- order_ext.validate_machine() says what is wrong with it.
CREATE TABLE order_ext.transitions (
    id          serial PRIMARY KEY,
    machine     text   NOT NULL REFERENCES order_ext.machines ON UPDATE CASCADE ON DELETE CASCADE,
    from_status text   NOT NULL CHECK (from_status ~ '^[a-z][a-z0-9_]{0,62}$'),
    event       text   NOT NULL CHECK (event ~ '^[a-z][a-z0-9_]{0,62}$'),
    to_status   text   NOT NULL CHECK (to_status ~ '^[a-z][a-z0-9_]{0,62}$'),
    actors      text[] NOT NULL DEFAULT '{system}' CHECK (cardinality(actors) > 0),
    effects     text[] NOT NULL DEFAULT '{}'
                CHECK (effects <@ ARRAY['stamp:paid_at', 'stamp:shipped_at', 'stamp:received_at',
                                        'stamp:completed_at', 'stamp:closed_at', 'merge_attrs',
                                        'stock:reserve', 'stock:commit', 'stock:release']),
    requires    jsonb  CHECK (requires IS NULL OR jsonb_typeof(requires) = 'object')
);
CREATE INDEX transitions_lookup_idx ON order_ext.transitions (machine, from_status, event);
COMMENT ON TABLE order_ext.transitions IS
'The state machines: from_status --event--> to_status, who may fire it (actors: buyer, merchant, system, platform; internal: only order_ext''s own functions, e.g. split), what it does (effects), and an optional guard (requires: the subject''s attributes must contain this JSON object).';
COMMENT ON COLUMN order_ext.transitions.effects IS
'stamp:<milestone column> sets that column to now(); merge_attrs merges payload.attrs into the order''s attrs; stock:reserve reserves the SKUs the order holds no reservation for yet (on_pay SKUs, at pay); stock:commit ships the reservations (on_hand and reserved both fall); stock:release gives them back and stops counting the order against purchase limits (cancel, expire, close).';

CREATE TABLE order_ext.status_labels (
    machine text NOT NULL REFERENCES order_ext.machines ON UPDATE CASCADE ON DELETE CASCADE,
    status  text NOT NULL CHECK (status ~ '^[a-z][a-z0-9_]{0,62}$'),
    role    text NOT NULL CHECK (role IN ('buyer', 'merchant', 'system', 'platform')),
    label   text NOT NULL,
    PRIMARY KEY (machine, status, role)
);
COMMENT ON TABLE order_ext.status_labels IS
'What each role sees for a status (the seed''s per-role status views).';

CREATE TABLE order_ext.timeouts (
    machine text     NOT NULL REFERENCES order_ext.machines ON UPDATE CASCADE ON DELETE CASCADE,
    status  text     NOT NULL CHECK (status ~ '^[a-z][a-z0-9_]{0,62}$'),
    after   interval NOT NULL CHECK (after >= interval '0' AND after <= interval '100 years'),
    event   text     NOT NULL CHECK (event ~ '^[a-z][a-z0-9_]{0,62}$'),
    PRIMARY KEY (machine, status, event)
);
COMMENT ON TABLE order_ext.timeouts IS
'When an order enters status, a timer due "after" later fires event (through the state machine). Changing a row changes the rule for orders entering the status afterwards.';

INSERT INTO order_ext.machines (machine, initial_status, terminal_statuses, description) VALUES
    ('physical',   'pending_payment', '{completed,cancelled,closed,split}',
     'B2C physical goods: pay, ship, confirm receipt, complete'),
    ('virtual',    'pending_payment', '{completed,cancelled,closed,split}',
     'Virtual goods: pay, deliver, complete'),
    ('after_sale', 'requested',       '{refunded,closed}',
     'After-sales requests: approve or reject, appeal, return, refund');

INSERT INTO order_ext.transitions (machine, from_status, event, to_status, actors, effects, requires) VALUES
    ('physical', 'pending_payment', 'pay',             'paid',            '{system}',                '{stamp:paid_at,stock:reserve}',   NULL),
    ('physical', 'pending_payment', 'cancel',          'cancelled',       '{buyer,merchant,system}', '{stamp:closed_at,stock:release}', NULL),
    ('physical', 'pending_payment', 'expire',          'cancelled',       '{system}',                '{stamp:closed_at,stock:release}', NULL),
    ('physical', 'pending_payment', 'modify',          'pending_payment', '{buyer,merchant}',        '{merge_attrs}',                   NULL),
    ('physical', 'paid',            'modify',          'paid',            '{buyer,merchant}',        '{merge_attrs}',                   NULL),
    ('physical', 'paid',            'ship',            'shipped',         '{merchant}',              '{stamp:shipped_at,stock:commit}', NULL),
    ('physical', 'shipped',         'confirm_receipt', 'received',        '{buyer,system}',          '{stamp:received_at}',             NULL),
    ('physical', 'received',        'complete',        'completed',       '{system}',                '{stamp:completed_at}',            NULL),
    ('physical', 'paid',            'close',           'closed',          '{system}',                '{stamp:closed_at,stock:release}', NULL),
    ('physical', 'shipped',         'close',           'closed',          '{system}',                '{stamp:closed_at,stock:release}', NULL),
    ('physical', 'received',        'close',           'closed',          '{system}',                '{stamp:closed_at,stock:release}', NULL),
    ('physical', 'pending_payment', 'split',           'split',           '{internal}',              '{}',                              NULL),
    ('physical', 'paid',            'split',           'split',           '{internal}',              '{}',                              NULL),

    ('virtual',  'pending_payment', 'pay',             'paid',            '{system}',                '{stamp:paid_at,stock:reserve}',   NULL),
    ('virtual',  'pending_payment', 'cancel',          'cancelled',       '{buyer,merchant,system}', '{stamp:closed_at,stock:release}', NULL),
    ('virtual',  'pending_payment', 'expire',          'cancelled',       '{system}',                '{stamp:closed_at,stock:release}', NULL),
    ('virtual',  'pending_payment', 'modify',          'pending_payment', '{buyer,merchant}',        '{merge_attrs}',                   NULL),
    ('virtual',  'paid',            'modify',          'paid',            '{buyer,merchant}',        '{merge_attrs}',                   NULL),
    ('virtual',  'paid',            'deliver',         'delivered',       '{merchant,system}',       '{stamp:shipped_at,stock:commit}', NULL),
    ('virtual',  'delivered',       'complete',        'completed',       '{system}',                '{stamp:completed_at}',            NULL),
    ('virtual',  'paid',            'close',           'closed',          '{system}',                '{stamp:closed_at,stock:release}', NULL),
    ('virtual',  'delivered',       'close',           'closed',          '{system}',                '{stamp:closed_at,stock:release}', NULL),
    ('virtual',  'pending_payment', 'split',           'split',           '{internal}',              '{}',                              NULL),
    ('virtual',  'paid',            'split',           'split',           '{internal}',              '{}',                              NULL),

    ('after_sale', 'requested',   'approve',        'approved',    '{merchant,system}', '{}',                              NULL),
    ('after_sale', 'requested',   'reject',         'rejected',    '{merchant}',        '{}',                              NULL),
    ('after_sale', 'rejected',    'appeal',         'arbitration', '{buyer}',           '{}',                              NULL),
    ('after_sale', 'arbitration', 'approve',        'approved',    '{platform}',        '{}',                              NULL),
    ('after_sale', 'arbitration', 'reject',         'rejected',    '{platform}',        '{}',                              NULL),
    ('after_sale', 'approved',    'receive_return', 'returned',    '{merchant}',        '{}',                              '{"kind": "return_refund"}'),
    ('after_sale', 'approved',    'refund',         'refunded',    '{merchant,system}', '{}',                              '{"kind": "refund_only"}'),
    ('after_sale', 'returned',    'refund',         'refunded',    '{merchant,system}', '{}',                              NULL),
    ('after_sale', 'rejected',    'close',          'closed',      '{system}',          '{}',                              NULL);

INSERT INTO order_ext.timeouts (machine, status, after, event) VALUES
    ('physical',   'pending_payment', '30 minutes', 'expire'),
    ('physical',   'shipped',         '10 days',    'confirm_receipt'),
    ('physical',   'received',        '7 days',     'complete'),
    ('virtual',    'pending_payment', '30 minutes', 'expire'),
    ('after_sale', 'requested',       '5 days',     'approve'),
    ('after_sale', 'rejected',        '15 days',    'close');

INSERT INTO order_ext.status_labels (machine, status, role, label)
SELECT m, s, r, l FROM (VALUES
    ('pending_payment', 'buyer', 'Awaiting your payment'),   ('pending_payment', 'merchant', 'Awaiting buyer payment'),
    ('paid',            'buyer', 'Paid, awaiting shipment'), ('paid',            'merchant', 'To ship'),
    ('shipped',         'buyer', 'On its way'),              ('shipped',         'merchant', 'Shipped'),
    ('delivered',       'buyer', 'Delivered'),               ('delivered',       'merchant', 'Delivered'),
    ('received',        'buyer', 'Received'),                ('received',        'merchant', 'Received by buyer'),
    ('completed',       'buyer', 'Completed'),               ('completed',       'merchant', 'Completed'),
    ('cancelled',       'buyer', 'Cancelled'),               ('cancelled',       'merchant', 'Cancelled'),
    ('closed',          'buyer', 'Closed (refunded)'),       ('closed',          'merchant', 'Closed (refunded)'),
    ('split',           'buyer', 'Split into several orders'), ('split',         'merchant', 'Split')
) AS v(s, r, l)
CROSS JOIN (VALUES ('physical'), ('virtual')) AS mm(m)
WHERE NOT (m = 'virtual' AND s IN ('shipped', 'received'))
  AND NOT (m = 'physical' AND s = 'delivered');

INSERT INTO order_ext.status_labels (machine, status, role, label) VALUES
    ('after_sale', 'requested',   'buyer', 'Waiting for the merchant'), ('after_sale', 'requested',   'merchant', 'To review'),
    ('after_sale', 'approved',    'buyer', 'Approved'),                 ('after_sale', 'approved',    'merchant', 'Approved'),
    ('after_sale', 'rejected',    'buyer', 'Rejected'),                 ('after_sale', 'rejected',    'merchant', 'Rejected'),
    ('after_sale', 'arbitration', 'buyer', 'Under platform review'),    ('after_sale', 'arbitration', 'merchant', 'Under platform review'),
    ('after_sale', 'returned',    'buyer', 'Return received'),          ('after_sale', 'returned',    'merchant', 'Return received'),
    ('after_sale', 'refunded',    'buyer', 'Refunded'),                 ('after_sale', 'refunded',    'merchant', 'Refunded'),
    ('after_sale', 'closed',      'buyer', 'Closed (not appealed)'),    ('after_sale', 'closed',      'merchant', 'Closed (not appealed)');

CREATE FUNCTION order_ext.config_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'config_changed' LANGUAGE C;
COMMENT ON FUNCTION order_ext.config_changed() IS
'Trigger: a machine table changed; every backend drops its cached machine definitions at commit.';

-- (machine_in_use, the trigger that keeps a machine orders name from being
-- renamed or deleted: 51_machine_tools.sql)

CREATE TRIGGER machines_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON order_ext.machines FOR EACH STATEMENT EXECUTE FUNCTION order_ext.config_changed();
CREATE TRIGGER transitions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON order_ext.transitions FOR EACH STATEMENT EXECUTE FUNCTION order_ext.config_changed();
CREATE TRIGGER timeouts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON order_ext.timeouts FOR EACH STATEMENT EXECUTE FUNCTION order_ext.config_changed();
-- they only tell the caches: let them fire in replica mode too (a
-- superuser's session_replication_role = replica), or a change made there
-- would leave every backend's cached machines stale
ALTER TABLE order_ext.machines ENABLE ALWAYS TRIGGER machines_changed;
ALTER TABLE order_ext.transitions ENABLE ALWAYS TRIGGER transitions_changed;
ALTER TABLE order_ext.timeouts ENABLE ALWAYS TRIGGER timeouts_changed;

INSERT INTO order_ext.role_grants VALUES
    ('app', 'table', 'machines', 'SELECT'),
    ('app', 'table', 'transitions', 'SELECT'),
    ('app', 'table', 'status_labels', 'SELECT'),
    ('app', 'table', 'timeouts', 'SELECT'),
    ('admin', 'table', 'machines', 'SELECT, INSERT, UPDATE, DELETE'),
    ('admin', 'table', 'transitions', 'SELECT, INSERT, UPDATE, DELETE'),
    ('admin', 'table', 'status_labels', 'SELECT, INSERT, UPDATE, DELETE'),
    ('admin', 'table', 'timeouts', 'SELECT, INSERT, UPDATE, DELETE'),
    ('admin', 'sequence', 'transitions_id_seq', 'USAGE');

