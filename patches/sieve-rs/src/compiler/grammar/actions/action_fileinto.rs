/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs Ltd <hello@stalw.art>
 *
 * SPDX-License-Identifier: AGPL-3.0-only OR LicenseRef-SEL
 */

use crate::compiler::{
    CompileError, ErrorType, Value,
    grammar::{
        Capability,
        instruction::{CompilerState, Instruction},
    },
    lexer::{Token, word::Word},
};

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    any(test, feature = "serde"),
    derive(serde::Serialize, serde::Deserialize)
)]
#[cfg_attr(
    feature = "rkyv",
    derive(rkyv::Serialize, rkyv::Deserialize, rkyv::Archive)
)]
pub(crate) struct FileInto {
    pub copy: bool,
    pub create: bool,
    pub folder: Value,
    pub flags: Vec<Value>,
    pub mailbox_id: Option<Value>,
    pub special_use: Option<Value>,
}

impl CompilerState<'_> {
    pub(crate) fn parse_fileinto(&mut self) -> Result<(), CompileError> {
        let folder;
        let mut copy = false;
        let mut create = false;
        let mut flags = Vec::new();
        let mut mailbox_id = None;
        let mut special_use = None;

        loop {
            let token_info = self.tokens.unwrap_next()?;
            match token_info.token {
                Token::Tag(Word::Copy) => {
                    self.validate_argument(
                        1,
                        Capability::Copy.into(),
                        token_info.line_num,
                        token_info.line_pos,
                    )?;
                    copy = true;
                }
                Token::Tag(Word::Create) => {
                    self.validate_argument(
                        2,
                        Capability::Mailbox.into(),
                        token_info.line_num,
                        token_info.line_pos,
                    )?;
                    create = true;
                }
                Token::Tag(Word::Flags) => {
                    self.validate_argument(
                        3,
                        Capability::Imap4Flags.into(),
                        token_info.line_num,
                        token_info.line_pos,
                    )?;
                    flags = self.parse_strings(false)?;
                }
                Token::Tag(Word::MailboxId) => {
                    self.validate_argument(
                        4,
                        Capability::Mailbox.into(),
                        token_info.line_num,
                        token_info.line_pos,
                    )?;
                    mailbox_id = self.parse_string()?.into();
                }
                Token::Tag(Word::SpecialUse) => {
                    self.validate_argument(
                        5,
                        Capability::SpecialUse.into(),
                        token_info.line_num,
                        token_info.line_pos,
                    )?;
                    special_use = self.parse_string()?.into();
                }
                _ => {
                    // sievegate patch (PATCHES.md #21): a constant name is checked here,
                    // where its position is known.
                    let (line_num, line_pos) = (token_info.line_num, token_info.line_pos);
                    folder = self.parse_string_token(token_info)?;
                    if let (Some(check), Value::Text(name)) =
                        (&self.compiler.mailbox_check, &folder)
                    {
                        if let Err(reason) = check(name) {
                            return Err(CompileError {
                                line_num,
                                line_pos,
                                error_type: ErrorType::InvalidMailbox {
                                    name: name.to_string(),
                                    reason,
                                },
                            });
                        }
                    }
                    break;
                }
            }
        }

        self.instructions.push(Instruction::FileInto(FileInto {
            folder,
            copy,
            create,
            flags,
            mailbox_id,
            special_use,
        }));
        Ok(())
    }
}
