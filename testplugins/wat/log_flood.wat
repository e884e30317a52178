;; log_flood.wat: a filter that writes 4 MiB of newlines to stdout in one
;; WASI fd_write per call, then keeps nothing. The host must log at most its
;; per-call budget of plugin output, quickly, count the rest as dropped, and
;; keep the instance.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ;; 65 pages: the flood at 65536 (4 MiB = 64 pages), its iovec at 16,
  ;; the input buffer grows above 4 MiB.
  (memory (export "memory") 66)

  (func (export "aegis_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "aegis_alloc") (param $size i32) (result i32)
    (local $top i32)
    (local.set $top (i32.add (i32.const 0x410000) (local.get $size)))
    (if (i32.gt_u (local.get $top) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.eq
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $top) (i32.shl (memory.size) (i32.const 16))) (i32.const 0xffff)) (i32.const 16)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 0x410000))

  (func (export "aegis_filter") (param $ptr i32) (param $len i32) (result i64)
    ;; 4 MiB of '\n' at 65536.
    (memory.fill (i32.const 65536) (i32.const 10) (i32.const 0x400000))
    ;; iovec {buf 65536, len 4 MiB} at 16; bytes written at 32.
    (i32.store (i32.const 16) (i32.const 65536))
    (i32.store (i32.const 20) (i32.const 0x400000))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))
    ;; An empty successful result (12 zero bytes) at 0.
    (i64.store (i32.const 0) (i64.const 0))
    (i32.store (i32.const 8) (i32.const 0))
    (i64.const 12)) ;; ptr 0 << 32 | len 12
)
