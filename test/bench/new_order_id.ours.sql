-- order_ext side: a time-ordered, never-repeating id from shared memory.
SELECT order_ext.new_order_id();
