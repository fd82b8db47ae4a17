--------------------------------------------------------------------------
-- Stock (stock.c): per-SKU settings, stock in buckets, reservations held by
-- orders, purchase limits and what each buyer holds.
--
-- A SKU's stock lives in one bucket row (normal mode) or in several (hot
-- mode, for flash sales): on_hand and reserved are per bucket, the CHECKs
-- hold per bucket and therefore for the sums.  An order reserves from one
-- bucket (several only when no single bucket has enough), so concurrent
-- orders for a hot SKU lock different rows.  order_ext.stock shows the sums.
--
-- SKU columns are COLLATE "C": rows are locked in that order everywhere
-- (create, ship, cancel, refund), so two multi-line orders never deadlock.
--------------------------------------------------------------------------

CREATE TABLE order_ext.stock_skus (
    sku        text COLLATE "C" PRIMARY KEY CHECK (sku <> '' AND octet_length(sku) <= 200),
    policy     text NOT NULL DEFAULT 'on_create' CHECK (policy IN ('on_create', 'on_pay')),
    buckets    int  NOT NULL DEFAULT 1 CHECK (buckets BETWEEN 1 AND 1024),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE order_ext.stock_skus IS
'Stock-tracked SKUs: deduction policy (on_create: reserve at create_order; on_pay: reserve when pay fires) and the number of buckets (1: normal mode; more: hot mode). Written by order_ext.set_stock().';

CREATE TABLE order_ext.stock_buckets (
    sku      text COLLATE "C" NOT NULL REFERENCES order_ext.stock_skus ON DELETE CASCADE,
    bucket   int    NOT NULL CHECK (bucket >= 0),
    on_hand  bigint NOT NULL CHECK (on_hand >= 0),
    reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    CHECK (reserved <= on_hand),
    PRIMARY KEY (sku, bucket)
) WITH (fillfactor = 50);
COMMENT ON TABLE order_ext.stock_buckets IS
'A SKU''s stock, in one row (normal mode) or split over several (hot mode). 0 <= reserved <= on_hand in every bucket; reserved equals the held reservations of the bucket (order_ext.check_stock() lists SKUs where it does not).';

CREATE TABLE order_ext.reservations (
    order_id   bigint NOT NULL,
    sku        text COLLATE "C" NOT NULL,
    bucket     int    NOT NULL,
    qty        bigint NOT NULL CHECK (qty > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, sku, bucket)
);
COMMENT ON TABLE order_ext.reservations IS
'Units an order holds, per SKU and bucket: made at create_order (on_create) or pay (on_pay), removed at ship (committed: on_hand falls too) or at cancel, expire, close and refunds before shipping (released).';

CREATE TABLE order_ext.purchase_limits (
    sku       text COLLATE "C" PRIMARY KEY CHECK (sku <> '' AND octet_length(sku) <= 200),
    per_buyer int NOT NULL CHECK (per_buyer > 0)
);
COMMENT ON TABLE order_ext.purchase_limits IS
'The most units of a SKU one buyer may hold across orders that are not cancelled, closed or split (refunded units do not count). Written by order_ext.set_purchase_limit().';

CREATE TABLE order_ext.buyer_holdings (
    buyer_id bigint NOT NULL,
    sku      text COLLATE "C" NOT NULL,
    qty      bigint NOT NULL CHECK (qty >= 0),
    PRIMARY KEY (buyer_id, sku)
);
COMMENT ON TABLE order_ext.buyer_holdings IS
'Units of a purchase-limited SKU each buyer holds now; the row lock serialises one buyer''s concurrent orders.';

-- the stock cache of every backend (stock.c) follows these two tables
CREATE TRIGGER stock_skus_changed AFTER INSERT OR UPDATE OR DELETE
    ON order_ext.stock_skus FOR EACH ROW EXECUTE FUNCTION order_ext.config_changed();
CREATE TRIGGER stock_skus_truncated AFTER TRUNCATE
    ON order_ext.stock_skus FOR EACH STATEMENT EXECUTE FUNCTION order_ext.config_changed();
CREATE TRIGGER purchase_limits_changed AFTER INSERT OR UPDATE OR DELETE
    ON order_ext.purchase_limits FOR EACH ROW EXECUTE FUNCTION order_ext.config_changed();
CREATE TRIGGER purchase_limits_truncated AFTER TRUNCATE
    ON order_ext.purchase_limits FOR EACH STATEMENT EXECUTE FUNCTION order_ext.config_changed();
-- in replica mode too, as the machine tables' (10_machines.sql)
ALTER TABLE order_ext.stock_skus ENABLE ALWAYS TRIGGER stock_skus_changed;
ALTER TABLE order_ext.stock_skus ENABLE ALWAYS TRIGGER stock_skus_truncated;
ALTER TABLE order_ext.purchase_limits ENABLE ALWAYS TRIGGER purchase_limits_changed;
ALTER TABLE order_ext.purchase_limits ENABLE ALWAYS TRIGGER purchase_limits_truncated;

CREATE VIEW order_ext.stock AS
SELECT s.sku,
       sum(b.on_hand)::bigint                AS on_hand,
       sum(b.reserved)::bigint               AS reserved,
       sum(b.on_hand - b.reserved)::bigint   AS available,
       s.policy,
       s.buckets > 1                         AS hot,
       s.buckets,
       s.updated_at
FROM order_ext.stock_skus s
JOIN order_ext.stock_buckets b ON b.sku = s.sku
GROUP BY s.sku;
COMMENT ON VIEW order_ext.stock IS
'Stock per SKU: on_hand, reserved, available = on_hand - reserved, policy, hot mode (the sums over the SKU''s buckets).';

CREATE FUNCTION order_ext.set_stock(
    sku      text,
    on_hand  bigint,
    policy   text    DEFAULT 'on_create',
    hot      boolean DEFAULT false,
    buckets  int     DEFAULT 16)
    RETURNS order_ext.stock
    AS 'MODULE_PATHNAME', 'set_stock' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.set_stock(text, bigint, text, boolean, integer) IS
'Set a SKU''s units on hand (reservations stay; on_hand may not fall below them), its policy (on_create: reserve at create_order; on_pay: reserve when pay fires) and its mode (hot => true spreads the available units over "buckets" rows so that concurrent orders do not queue on one row lock). A SKU without a stock row is not stock-tracked.';

CREATE FUNCTION order_ext.available(sku text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'stock_available' LANGUAGE C STABLE STRICT
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.available(text) IS
'Units of a SKU that can still be reserved (on_hand - reserved); NULL for a SKU that is not stock-tracked.';

CREATE FUNCTION order_ext.set_purchase_limit(sku text, per_buyer int) RETURNS void
    AS 'MODULE_PATHNAME', 'set_purchase_limit' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.set_purchase_limit(text, integer) IS
'The most units of a SKU one buyer may hold across orders that are not cancelled, closed or split (refunded units do not count); more: OE005. NULL removes the limit. Setting a limit counts what buyers already hold.';

CREATE FUNCTION order_ext.check_stock()
    RETURNS TABLE (sku text, reserved bigint, held bigint)
    AS 'MODULE_PATHNAME', 'check_stock' LANGUAGE C STABLE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION order_ext.check_stock() IS
'Every SKU whose reserved differs from the sum of the reservations orders hold (reserved: the stock rows; held: the reservations). No rows: healthy.';

INSERT INTO order_ext.role_grants VALUES
    ('app', 'function', 'available', 'EXECUTE'),
    ('app', 'table', 'stock', 'SELECT'),
    ('admin', 'function', 'set_stock', 'EXECUTE'),
    ('admin', 'function', 'set_purchase_limit', 'EXECUTE'),
    ('admin', 'function', 'check_stock', 'EXECUTE'),
    ('admin', 'table', 'stock_skus', 'SELECT'),
    ('admin', 'table', 'stock_buckets', 'SELECT'),
    ('admin', 'table', 'reservations', 'SELECT'),
    ('admin', 'table', 'purchase_limits', 'SELECT'),
    ('admin', 'table', 'buyer_holdings', 'SELECT');
