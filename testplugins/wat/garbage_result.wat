;; garbage_result.wat: a filter whose result region is in bounds but is not
;; a valid result: a 12-byte header saying status 0 (ok), 1000000 kept
;; indices and 0 errors, and then nothing (len 12). The host's decoder must
;; refuse it (4000000 bytes of indices announced, none there) and fail the
;; call instead of reading past the region.
(module
  (memory (export "memory") 1)

  ;; status 0, count 1000000 (0x000F4240), error count 0
  (data (i32.const 64) "\00\00\00\00\40\42\0f\00\00\00\00\00")

  (func (export "aegis_abi_version") (result i32)
    (i32.const 0x00010000)) ;; 1.0

  (func (export "aegis_kinds") (result i32)
    (i32.const 1)) ;; filter

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

  ;; (64 << 32) | 12
  (func (export "aegis_filter") (param $ptr i32) (param $len i32) (result i64)
    (i64.const 0x000000400000000C))
)
