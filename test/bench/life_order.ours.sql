-- order_ext side: the whole life of a 3-line order, each step its own
-- transaction as an application would run it: create_order, the gateway's
-- payment callback (record_payment, which fires 'pay'), ship (merchant),
-- confirm_receipt (buyer), complete (the after-sales window's timer would
-- fire it; here called directly).  Every step locks the order, checks
-- version, transition and actor, writes the event and outbox rows, stamps
-- the milestone and schedules the next timer.
\set buyer random(1, 100000)
SELECT order_id
FROM order_ext.create_order(order_ext.new_order_id(), :buyer,
     '[{"sku":"BOOK-1","qty":2,"unit_price":3999},{"sku":"PEN-7","qty":3,"unit_price":550},{"sku":"MUG-3","qty":1,"unit_price":2500}]'::jsonb) \gset
SELECT status FROM order_ext.record_payment(:order_id, 'TXN-' || :order_id, 12148, 'card');
SELECT status FROM order_ext.fire(:order_id, 'ship', actor => 'merchant');
SELECT status FROM order_ext.fire(:order_id, 'confirm_receipt', actor => 'buyer');
SELECT status FROM order_ext.fire(:order_id, 'complete');
