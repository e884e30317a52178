;; bad_import.wat: a valid keep-all filter that also imports "env" "abort"
;; (i32 i32 i32 i32) -> (), as AssemblyScript modules do. Only aegis.log (and
;; WASI) may be imported, so the host must refuse the module at load, naming
;; the import, instead of failing to instantiate it with a generic error.
;; The import is never called.
;;
;; No aegis_kinds (it is optional): aegis_filter says what it is.
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))

  (memory (export "memory") 1)

  (func (export "aegis_abi_version") (result i32)
    (i32.const 0x00010000)) ;; 1.0

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

  ;; Prebuilt results: u32 status, u32 message length, u32 0, message.
  (data (i32.const 64) "\01\00\00\00\09\00\00\00\00\00\00\00bad batch")
  (data (i32.const 128) "\03\00\00\00\0d\00\00\00\00\00\00\00out of memory")

  ;; aegis_filter keeps every event: status 0, count n, 0 errors, indices
  ;; 0..n-1, in a result buffer right after the input.
  (func (export "aegis_filter") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32) (local $res i32) (local $i i32)
    ;; u32 count, and room for count records of at least 48 bytes each
    (if (i32.lt_u (local.get $len) (i32.const 4))
      (then (return (call $pack (i32.const 64) (i32.const 21)))))
    (local.set $n (i32.load (local.get $ptr)))
    (if (i64.gt_u (i64.mul (i64.extend_i32_u (local.get $n)) (i64.const 48))
                  (i64.extend_i32_u (i32.sub (local.get $len) (i32.const 4))))
      (then (return (call $pack (i32.const 64) (i32.const 21)))))
    ;; result buffer: after the input, aligned to 8
    (local.set $res
      (i32.and (i32.add (i32.add (local.get $ptr) (local.get $len)) (i32.const 7)) (i32.const -8)))
    (if (i32.eqz (call $reserve (local.get $res)
                   (i32.add (i32.const 12) (i32.shl (local.get $n) (i32.const 2)))))
      (then (return (call $pack (i32.const 128) (i32.const 25)))))
    (i32.store (local.get $res) (i32.const 0))             ;; status ok
    (i32.store offset=4 (local.get $res) (local.get $n))   ;; count
    (i32.store offset=8 (local.get $res) (i32.const 0))    ;; no errors
    (block $done
      (loop $next
        (br_if $done (i32.eq (local.get $i) (local.get $n)))
        (i32.store offset=12
          (i32.add (local.get $res) (i32.shl (local.get $i) (i32.const 2)))
          (local.get $i))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $pack (local.get $res)
      (i32.add (i32.const 12) (i32.shl (local.get $n) (i32.const 2)))))
)
