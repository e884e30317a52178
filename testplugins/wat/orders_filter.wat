;; orders_filter.wat: the filter step of the orders workload (BENCHMARKS.md),
;; written by hand against ABI v1 with no SDK and no WASI.
;;
;; It keeps every event whose type is not exactly the 14 bytes
;; "order.refunded". It exists to show that the ABI is language-neutral and
;; to give the host a guest with no runtime overhead at all: the per-event
;; work is a handful of loads and compares.
;;
;; It validates what it reads (the count against the input length, every
;; record size against the bytes left, the type length against the record)
;; and answers a malformed batch with status 1 (bad input) and a short
;; message instead of trapping. It does not check what it does not read
;; (UTF-8, data kinds, metadata): that is the host's encoder's job.
;;
;; aegis_init accepts any configuration and logs "orders_filter ready" at
;; info level through aegis.log, so tests can see plugin logs.
;;
;; Memory map:
;;   [0, 1024)            static data: prebuilt results, the log message
;;   [IN, IN+cap)         the input buffer handed out by aegis_alloc (IN = 1024)
;;   [res, res+cap/12+64) the result buffer, right after the input buffer
;; A batch of n records takes at least 4 + 48n bytes, so a filter result
;; (12 + 4 bytes per kept event) never needs more than 12 + cap/12 bytes;
;; the spare bytes let the record loop load a header's fields at the very
;; end of the input before it finds out that the record is cut short.
(module
  (import "aegis" "log" (func $log (param i32 i32 i32)))

  (memory (export "memory") 1)

  (global $IN i32 (i32.const 1024))      ;; start of the input buffer
  (global $cap (mut i32) (i32.const 0))  ;; its size
  (global $res (mut i32) (i32.const 1024)) ;; start of the result buffer

  ;; Prebuilt results: u32 status, u32 count (message length), u32 0, message.
  (data (i32.const 64) "\00\00\00\00\00\00\00\00\00\00\00\00") ;; ok, empty body
  (data (i32.const 96) "orders_filter ready")                  ;; 19 bytes
  (data (i32.const 128) "\01\00\00\00\26\00\00\00\00\00\00\00input is not in the aegis_alloc buffer")
  (data (i32.const 192) "\01\00\00\00\1c\00\00\00\00\00\00\00batch shorter than its count")
  (data (i32.const 256) "\01\00\00\00\19\00\00\00\00\00\00\00record size out of bounds")
  (data (i32.const 320) "\01\00\00\00\22\00\00\00\00\00\00\00record type longer than the record")
  (data (i32.const 384) "\01\00\00\00\1b\00\00\00\00\00\00\00bytes after the last record")

  ;; pack returns the region [ptr, ptr+len) as ptr<<32 | len.
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))

  (func (export "aegis_abi_version") (result i32)
    (i32.const 0x00010000)) ;; 1.0

  (func (export "aegis_kinds") (result i32)
    (i32.const 1)) ;; filter

  ;; aegis_alloc returns the input buffer, IN, after making sure that it holds
  ;; size bytes and that the result buffer after it fits in memory. The
  ;; previous buffer is dead by then, so a bigger one simply replaces it at
  ;; the same place. Returns 0 if memory cannot grow enough.
  (func (export "aegis_alloc") (param $size i32) (result i32)
    (local $cap i64) (local $need i64) (local $have i64)
    (if (i32.le_u (local.get $size) (global.get $cap))
      (then (return (global.get $IN))))
    ;; round up to 8 so that the result buffer is aligned
    (local.set $cap
      (i64.and (i64.add (i64.extend_i32_u (local.get $size)) (i64.const 7)) (i64.const -8)))
    ;; need = IN + cap + (cap/12 + 64), in i64 so nothing wraps
    (local.set $need
      (i64.add
        (i64.add (i64.extend_i32_u (global.get $IN)) (local.get $cap))
        (i64.add (i64.div_u (local.get $cap) (i64.const 12)) (i64.const 64))))
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.gt_u (local.get $need) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.wrap_i64
                (i64.shr_u (i64.add (i64.sub (local.get $need) (local.get $have)) (i64.const 0xffff))
                           (i64.const 16))))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $cap (i32.wrap_i64 (local.get $cap)))
    (global.set $res (i32.add (global.get $IN) (global.get $cap)))
    (global.get $IN))

  ;; aegis_init takes any configuration, logs that the plugin is ready and
  ;; returns an ok result with an empty body.
  (func (export "aegis_init") (param $ptr i32) (param $len i32) (result i64)
    (call $log (i32.const 0) (i32.const 96) (i32.const 19)) ;; info
    (call $pack (i32.const 64) (i32.const 12)))

;; aegis_filter reads the batch at [ptr, ptr+len) and returns the indices
  ;; of the events whose type is not "order.refunded".
  (func (export "aegis_filter") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32)    ;; records in the batch
    (local $i i32)    ;; index of the current record
    (local $p i32)    ;; the current record
    (local $end i32)  ;; end of the input
    (local $size i32) ;; size of the current record
    (local $tl i32)   ;; its type length
    (local $keep i32) ;; 1 to keep it, 0 to drop it
    (local $out i32)  ;; where the next kept index goes

    ;; The input must be in the buffer aegis_alloc returned: the result
    ;; buffer comes right after it.
    (if (i32.or (i32.ne (local.get $ptr) (global.get $IN))
                (i32.gt_u (local.get $len) (global.get $cap)))
      (then (return (call $pack (i32.const 128) (i32.const 50)))))

    ;; u32 count, and room for count records of at least 48 bytes each
    ;; (computed in i64: count*48 can exceed 32 bits).
    (if (i32.lt_u (local.get $len) (i32.const 4))
      (then (return (call $pack (i32.const 192) (i32.const 40)))))
    (local.set $n (i32.load (local.get $ptr)))
    (if (i64.gt_u (i64.mul (i64.extend_i32_u (local.get $n)) (i64.const 48))
                  (i64.extend_i32_u (i32.sub (local.get $len) (i32.const 4))))
      (then (return (call $pack (i32.const 192) (i32.const 40)))))

    (local.set $p (i32.add (local.get $ptr) (i32.const 4)))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $out (i32.add (global.get $res) (i32.const 12)))

    (block $bad
      (block $done
        (loop $next
          (br_if $done (i32.eq (local.get $i) (local.get $n)))

          ;; One branch for all the checks: 48 <= size <= bytes left and
          ;; type length <= size - 48 (if size < 48 the subtraction wraps,
          ;; but the first test has failed already). When fewer than 48
          ;; bytes are left, these loads read past the input into the result
          ;; buffer, which is at least 64 bytes: harmless, and the size test
          ;; then fails.
          (local.set $size (i32.load (local.get $p)))
          (local.set $tl (i32.load offset=36 (local.get $p)))
          (br_if $bad
            (i32.or
              (i32.or (i32.lt_u (local.get $size) (i32.const 48))
                      (i32.gt_u (local.get $size) (i32.sub (local.get $end) (local.get $p))))
              (i32.gt_u (local.get $tl) (i32.sub (local.get $size) (i32.const 48)))))

          ;; Length first; only a 14-byte type is compared, as the little-
          ;; endian i64 "order.re", i32 "fund" and i16 "ed" of "order.refunded".
          (local.set $keep (i32.const 1))
          (if (i32.eq (local.get $tl) (i32.const 14))
            (then
              (local.set $keep
                (i32.eqz
                  (i32.and
                    (i32.and
                      (i64.eq (i64.load offset=48 (local.get $p)) (i64.const 0x65722e726564726f))
                      (i32.eq (i32.load offset=56 (local.get $p)) (i32.const 0x646e7566)))
                    (i32.eq (i32.load16_u offset=60 (local.get $p)) (i32.const 0x6465)))))))

          ;; Write the index unconditionally and advance only if kept: no
          ;; branch, and the buffer has room for every index.
          (i32.store (local.get $out) (local.get $i))
          (local.set $out (i32.add (local.get $out) (i32.shl (local.get $keep) (i32.const 2))))

          (local.set $p (i32.add (local.get $p) (local.get $size)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))

      ;; the records must use the input exactly
      (if (i32.ne (local.get $p) (local.get $end))
        (then (return (call $pack (i32.const 384) (i32.const 39)))))

      ;; header: status 0, count of kept indices, 0 errors
      (i32.store (global.get $res) (i32.const 0))
      (i32.store offset=4 (global.get $res)
        (i32.shr_u (i32.sub (local.get $out) (i32.add (global.get $res) (i32.const 12))) (i32.const 2)))
      (i32.store offset=8 (global.get $res) (i32.const 0))
      (return (call $pack (global.get $res) (i32.sub (local.get $out) (global.get $res)))))

    ;; $bad: a check failed at record i; say which (off the hot path).
    (if (i32.or (i32.lt_u (local.get $size) (i32.const 48))
                (i32.gt_u (local.get $size) (i32.sub (local.get $end) (local.get $p))))
      (then (return (call $pack (i32.const 256) (i32.const 37)))))
    (call $pack (i32.const 320) (i32.const 46)))
)
