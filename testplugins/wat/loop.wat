;; loop.wat: a filter that never returns: it branches back to the start of a
;; loop forever, without calling anything or touching memory. For deadline
;; tests: the host's time limit must stop it and discard the instance. (In
;; wazero only an interruptible configuration stops compiled code in a loop,
;; such as WithCloseOnContextDone, whose cost DESIGN.md discusses; a timer
;; that merely waits for the call to return waits forever.)
(module
  (memory (export "memory") 1)

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

  (func (export "aegis_filter") (param $ptr i32) (param $len i32) (result i64)
    (loop $forever (result i64)
      (br $forever)))
)
