;; keep_all_map.wat: a map that emits every input record unchanged, one
;; output per input, to test the host's decoding of map results without Go.
;;
;; Each record is copied byte for byte into the result body, with its index
;; field set to the position of the input event it came from (which the host
;; already wrote there). The result is status 0, count n, 0 errors, then the
;; n records; it lives in a buffer right after the input.
;;
;; It checks the batch's framing (the count, every record size against the
;; bytes left, nothing after the last record) and answers a malformed batch
;; with status 1 (bad input); it does not look inside the records.
(module
  (memory (export "memory") 1)

  ;; Prebuilt results: u32 status, u32 message length, u32 0, message.
  (data (i32.const 64) "\01\00\00\00\09\00\00\00\00\00\00\00bad batch")
  (data (i32.const 128) "\03\00\00\00\0d\00\00\00\00\00\00\00out of memory")

  (func (export "aegis_abi_version") (result i32)
    (i32.const 0x00010000)) ;; 1.0

  (func (export "aegis_kinds") (result i32)
    (i32.const 2)) ;; map

  ;; pack returns the region [ptr, ptr+len) as ptr<<32 | len.
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))

  ;; aegis_alloc: the input buffer is always at 1024 (the previous one is
  ;; dead when the host asks for a bigger one); memory grows to hold it.
  (func (export "aegis_alloc") (param $size i32) (result i32)
    (if (result i32) (call $reserve (i32.const 1024) (local.get $size))
      (then (i32.const 1024))
      (else (i32.const 0))))

  ;; reserve makes [at, at+n) addressable, growing memory if needed; it
  ;; returns 0 if memory cannot grow that far.
  (func $reserve (param $at i32) (param $n i32) (result i32)
    (local $need i64) (local $have i64)
    (local.set $need (i64.add (i64.extend_i32_u (local.get $at)) (i64.extend_i32_u (local.get $n))))
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.le_u (local.get $need) (local.get $have))
      (then (return (i32.const 1))))
    (i32.ne
      (memory.grow (i32.wrap_i64
        (i64.shr_u (i64.add (i64.sub (local.get $need) (local.get $have)) (i64.const 0xffff))
                   (i64.const 16))))
      (i32.const -1)))

  (func (export "aegis_map") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32) (local $i i32) (local $p i32) (local $end i32)
    (local $size i32) (local $res i32) (local $out i32)
    ;; u32 count, and room for count records of at least 48 bytes each
    (if (i32.lt_u (local.get $len) (i32.const 4))
      (then (return (call $pack (i32.const 64) (i32.const 21)))))
    (local.set $n (i32.load (local.get $ptr)))
    (if (i64.gt_u (i64.mul (i64.extend_i32_u (local.get $n)) (i64.const 48))
                  (i64.extend_i32_u (i32.sub (local.get $len) (i32.const 4))))
      (then (return (call $pack (i32.const 64) (i32.const 21)))))
    ;; result buffer: after the input, aligned to 8; the records take what
    ;; they took in the input (len - 4 bytes) plus a 12-byte header
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $res (i32.and (i32.add (local.get $end) (i32.const 7)) (i32.const -8)))
    (if (i32.eqz (call $reserve (local.get $res) (i32.add (local.get $len) (i32.const 8))))
      (then (return (call $pack (i32.const 128) (i32.const 25)))))

    (local.set $p (i32.add (local.get $ptr) (i32.const 4)))
    (local.set $out (i32.add (local.get $res) (i32.const 12)))
    (block $done
      (loop $next
        (br_if $done (i32.eq (local.get $i) (local.get $n)))
        ;; 48 <= size <= bytes left
        (if (i32.lt_u (i32.sub (local.get $end) (local.get $p)) (i32.const 48))
          (then (return (call $pack (i32.const 64) (i32.const 21)))))
        (local.set $size (i32.load (local.get $p)))
        (if (i32.or (i32.lt_u (local.get $size) (i32.const 48))
                    (i32.gt_u (local.get $size) (i32.sub (local.get $end) (local.get $p))))
          (then (return (call $pack (i32.const 64) (i32.const 21)))))
        ;; copy it, and set its index (offset 4) to its input position
        (memory.copy (local.get $out) (local.get $p) (local.get $size))
        (i32.store offset=4 (local.get $out) (local.get $i))
        (local.set $out (i32.add (local.get $out) (local.get $size)))
        (local.set $p (i32.add (local.get $p) (local.get $size)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; nothing after the last record
    (if (i32.ne (local.get $p) (local.get $end))
      (then (return (call $pack (i32.const 64) (i32.const 21)))))

    (i32.store (local.get $res) (i32.const 0))            ;; status ok
    (i32.store offset=4 (local.get $res) (local.get $n))  ;; count
    (i32.store offset=8 (local.get $res) (i32.const 0))   ;; no errors
    (call $pack (local.get $res) (i32.sub (local.get $out) (local.get $res))))
)
