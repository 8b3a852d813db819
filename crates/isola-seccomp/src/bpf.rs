//! A tiny classic-BPF assembler for seccomp filters: instructions whose jump targets are labels,
//! resolved to the 8-bit relative offsets the kernel wants once the program is complete.

/// One classic BPF instruction as the kernel reads it (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

pub const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS
pub const ALU_AND_K: u16 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
pub const JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
pub const JGT_K: u16 = 0x05 | 0x20; // BPF_JMP | BPF_JGT | BPF_K
pub const JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
pub const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Where a conditional jump goes: the next instruction, or a label placed later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Next,
    Label(usize),
}

struct Insn {
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
}

/// A program under construction.
#[derive(Default)]
pub struct Assembler {
    insns: Vec<Insn>,
    /// label → index of the instruction it names (None until placed).
    labels: Vec<Option<usize>>,
}

impl Assembler {
    pub fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    /// Places `label` at the next instruction.
    pub fn place(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }

    pub fn load(&mut self, offset: u32) {
        self.stmt(LD_W_ABS, offset);
    }

    pub fn and(&mut self, mask: u32) {
        self.stmt(ALU_AND_K, mask);
    }

    pub fn ret(&mut self, value: u32) {
        self.stmt(RET_K, value);
    }

    pub fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.insns.push(Insn { code, k, jt, jf });
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.jump(code, k, Target::Next, Target::Next);
    }

    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Resolves labels. Fails if a label was never placed or lies more than 255 instructions
    /// ahead (the compiler keeps every jump inside one rule, so that is a bug, not bad input).
    pub fn finish(self) -> Result<Vec<SockFilter>, String> {
        let mut out = Vec::with_capacity(self.insns.len());
        for (i, insn) in self.insns.iter().enumerate() {
            let rel = |t: Target| -> Result<u8, String> {
                match t {
                    Target::Next => Ok(0),
                    Target::Label(l) => {
                        let at = self.labels[l].ok_or("seccomp: a jump to an unplaced label")?;
                        u8::try_from(at.wrapping_sub(i + 1))
                            .map_err(|_| format!("seccomp: jump from {i} to {at} out of range"))
                    }
                }
            };
            out.push(SockFilter {
                code: insn.code,
                jt: rel(insn.jt)?,
                jf: rel(insn.jf)?,
                k: insn.k,
            });
        }
        Ok(out)
    }
}

/// Runs `prog` on a call the way the kernel would (for tests); returns the filter's verdict.
pub fn interpret(prog: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, v) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let f = prog[pc];
        pc += 1;
        let jump = |cond: bool| if cond { f.jt } else { f.jf } as usize;
        match f.code {
            LD_W_ABS => {
                let o = f.k as usize;
                acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
            }
            ALU_AND_K => acc &= f.k,
            JEQ_K => pc += jump(acc == f.k),
            JGT_K => pc += jump(acc > f.k),
            JGE_K => pc += jump(acc >= f.k),
            RET_K => return f.k,
            c => unreachable!("the assembler emits no instruction {c:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_to_relative_offsets() {
        let mut a = Assembler::default();
        let end = a.label();
        a.load(0);
        a.jump(JEQ_K, 5, Target::Next, Target::Label(end));
        a.ret(1);
        a.place(end);
        a.ret(2);
        let p = a.finish().unwrap();
        assert_eq!(p[1].jt, 0);
        assert_eq!(p[1].jf, 1);
        assert_eq!(p[3].k, 2);
    }

    #[test]
    fn backward_or_unplaced_labels_are_errors() {
        let mut a = Assembler::default();
        let l = a.label();
        a.jump(JEQ_K, 0, Target::Label(l), Target::Next);
        assert!(a.finish().is_err());
    }
}
